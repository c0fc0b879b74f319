"""Which attribution maps are faithful to the model? Deletion curves (Petsiuk et al. 2018) rank
seven methods on a 1-D CNN for MNIST-1D and a 2-D CNN for the 8x8 digits, next to Adebayo et
al.'s model-randomisation sanity check.

For each seed (which draws the initial weights, the shuffling, the digits' 70/30 split, the
randomised weights, SmoothGrad's noise, the random maps and the order of tied entries) both CNNs
are trained, and the predicted class of the first test examples is explained by saliency
(|gradient|), gradient x input, integrated gradients (zero baseline, 32 midpoint steps),
SmoothGrad (|mean gradient| over 16 noisy copies at noise level 0.15), Grad-CAM at the last
convolution's ReLU, occlusion (windows of 4 samples with stride 2 on the signals, 2x2 pixels
with stride 1 on the digits) and a random map (uniform noise, the baseline). Each map ranks the
input's entries (ties in random order); the deletion curve
(:func:`jaxlearn.faithfulness.deletion_curve`) sets them to 0 in that order in 20 chunks and
follows the predicted class's probability; its area (AUC) is low when the map points at what the
model needs. Insertion AUCs (the mirror, from an all-zero input) are reported beside them.

Checks, each on the mean over seeds with its 95% Student-t interval: for each task and each
gradient-based method (saliency, gradient x input, integrated gradients, SmoothGrad, Grad-CAM),
deletion AUC minus the random map's, paired over seeds, < 0 (Petsiuk et al.'s criterion: better
than deleting at random; 0 is "no better"); both CNNs' test accuracy >= 0.5 (a practical margin
far above chance, 0.1, so the maps explain a model that has learnt the task). Sanity checks
(exact, no seed noise): the random maps do not depend on the weights, so their randomisation
rank correlation is 1; every deletion curve ends at the same all-zero input, so its last point
is the same for every method.

Result (full run, 10 seeds): every check holds except Grad-CAM on the digits, which is
inconclusive (-0.009 [-0.021, 0.003]): its map is all 0 on ~90% of the digits (see the notes),
so the experiment's verdict is inconclusive. Seeds: quick 3 (~10 s on an idle warm 2-core CPU,
~25 s with the cores shared; the MNIST-1D data set takes a few more seconds to generate on
first use in a process), full 10 (t = 2.26 on 9 df; ~2 min with the cores shared).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn import explain, faithfulness
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table, mean_sd

CLAIM = ("Gradient-based attribution maps (saliency, gradient x input, integrated gradients, "
         "SmoothGrad, Grad-CAM) are faithful to a CNN in Petsiuk et al.'s (2018) deletion test: "
         "deleting the input entries a map ranks highest lowers the predicted class's "
         "probability faster than deleting them in random order (a lower deletion AUC than a "
         "random map, paired over seeds), on MNIST-1D signals and on 8x8 digit images; the "
         "ranking of the methods is reported next to Adebayo et al.'s randomisation check.")

CE = jl.losses.SOFTMAX_CE_INT
TASKS = ("MNIST-1D", "digits")
METHODS = ("saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "grad_cam",
           "occlusion", "random")
GRADIENT_METHODS = METHODS[:5]
LABELS = {"saliency": "saliency", "gradient_x_input": "gradient x input",
          "integrated_gradients": "integrated gradients", "smoothgrad": "SmoothGrad",
          "grad_cam": "Grad-CAM", "occlusion": "occlusion", "random": "random map"}
COLORS = {"saliency": "#3182bd", "gradient_x_input": "#e6550d", "integrated_gradients": "#31a354",
          "smoothgrad": "#756bb1", "grad_cam": "#d62728", "occlusion": "#8c564b",
          "random": "#7f7f7f"}
STYLES = {"saliency": "-", "gradient_x_input": "-", "integrated_gradients": "--",
          "smoothgrad": "-", "grad_cam": "-", "occlusion": "-.", "random": ":"}

# The two CNNs as layer tuples (Grad-CAM cuts them at a layer), built once so that every seed
# reuses the compiled programs keyed on them. MNIST-1D: the reference CNN of experiments/mnist1d.
LAYERS = {
    "MNIST-1D": (jl.nn.reshape((40, 1)),
                 jl.nn.conv1d(25, 5, stride=2, padding=1), jl.nn.relu,
                 jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
                 jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
                 jl.nn.flatten(), jl.nn.dense(10)),
    "digits": (jl.nn.conv2d(16, 3, padding=1), jl.nn.relu,
               jl.nn.conv2d(32, 3, stride=2, padding=1), jl.nn.relu,
               jl.nn.flatten(), jl.nn.dense(10)),
}
MODELS = {task: jl.nn.serial(*layers) for task, layers in LAYERS.items()}
INPUT_SHAPE = {"MNIST-1D": (40,), "digits": (8, 8, 1)}
CAM_LAYER = {"MNIST-1D": 6, "digits": 3}             # the last convolution's ReLU: 5 and 4x4
OCCLUSION = {"MNIST-1D": dict(window=4, stride=2), "digits": dict(window=(2, 2), stride=(1, 1))}
BATCH_SIZE = 100
OPTIMIZER = optax.adam(3e-3)
EPOCHS = {"MNIST-1D": (10, 40), "digits": (15, 60)}  # (quick, full)
N_STEPS = 20           # deletion / insertion chunks
ACCURACY_FLOOR = 0.5   # practical margin, chance is 0.1


def _methods(task: str) -> dict:
    """``name -> fn(params, x, target, key) -> maps`` (the map each method would display)."""
    apply, layers = MODELS[task].apply, LAYERS[task]
    return {
        "saliency": lambda p, x, t, k: jnp.abs(explain.saliency(apply, p, x, target=t)),
        "gradient_x_input": lambda p, x, t, k: explain.gradient_x_input(apply, p, x, target=t),
        "integrated_gradients": lambda p, x, t, k: explain.integrated_gradients(
            apply, p, x, target=t, n_steps=32),
        "smoothgrad": lambda p, x, t, k: jnp.abs(explain.smoothgrad(
            apply, p, x, key=k, target=t, n_samples=16, noise_level=0.15)),
        "grad_cam": lambda p, x, t, k: explain.grad_cam(layers, p, x, layer=CAM_LAYER[task],
                                                        target=t),
        "occlusion": lambda p, x, t, k: explain.occlusion(apply, p, x, target=t,
                                                          **OCCLUSION[task]),
        "random": lambda p, x, t, k: jax.random.uniform(k, x.shape, x.dtype),
    }


def _data(task: str, key, datasets):
    if task == "MNIST-1D":
        return datasets[task]             # the published split; seeds vary the rest
    x, y = datasets[task]
    return jl.data.train_test_split(key, x, y, test_size=0.3)


def _one_seed(task: str, seed: int, methods: dict, datasets, *, quick: bool, n_explain: int):
    k_split, k_init, k_fit, k_maps, k_weights, k_ties = jax.random.split(jax.random.key(seed), 6)
    data = _data(task, k_split, datasets)
    model = MODELS[task]
    _, params = model.init(k_init, INPUT_SHAPE[task])
    params = jl.fit(model.apply, params, data.x_train, data.y_train, loss=CE, optimizer=OPTIMIZER,
                    key=k_fit, batch_size=BATCH_SIZE,
                    epochs=EPOCHS[task][0 if quick else 1]).params
    accuracy = jl.evaluate(model.apply, params, data.x_test, data.y_test)["accuracy"]
    x = np.asarray(data.x_test[:n_explain])
    target = np.asarray(jl.predict(model.apply, params, x)).argmax(1)
    randomised = explain.randomize_layers(k_weights, params, explain.param_layers(params))
    result = {"accuracy": float(accuracy), "deletion": {}, "insertion": {}, "sanity": {},
              "curve": {}, "example_maps": {}, "example": x[0]}
    for name, fn in methods.items():
        maps = fn(params, x, target, k_maps)
        # Ties (Grad-CAM's rectified zeros, occlusion's windows, the blank pixels of gradient x
        # input) are broken at random, so that no map is helped by the order of position.
        deletion = faithfulness.deletion_curve(model.apply, params, x, maps, target=target,
                                               n_steps=N_STEPS, key=k_ties)
        insertion = faithfulness.insertion_curve(model.apply, params, x, maps, target=target,
                                                 n_steps=N_STEPS, key=k_ties)
        rho = np.asarray(explain.spearman_correlation(
            jnp.abs(maps), jnp.abs(fn(randomised, x, target, k_maps))))
        result["deletion"][name] = float(jnp.mean(deletion.auc))
        result["insertion"][name] = float(jnp.mean(insertion.auc))
        # NaN where a map is constant (an all-zero Grad-CAM): no rank order to correlate.
        result["sanity"][name] = float(np.mean(rho[np.isfinite(rho)])) if np.any(
            np.isfinite(rho)) else float("nan")
        result["curve"][name] = np.asarray(jnp.mean(deletion.score, axis=0))
        result["example_maps"][name] = np.asarray(maps[0])
        if name == "grad_cam":
            result["cam_zero"] = float(np.mean(np.all(np.asarray(maps).reshape(len(x), -1) == 0,
                                                      axis=1)))
    result["fraction"] = np.asarray(deletion.fraction)
    return result


def _curves_figure(curves, fraction, seeds) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    for ax, task in zip(fig.subplots(1, 2), TASKS):
        for m in METHODS:
            ax.plot(fraction, np.mean(curves[task][m], axis=0), STYLES[m], color=COLORS[m],
                    label=LABELS[m], lw=2 if m == "random" else 1.5)
        ax.set(xlabel="fraction of the input deleted (set to 0), most attributed first",
               ylabel="probability of the predicted class", ylim=(0, 1.02),
               title=f"{task}: deletion curves")
        ax.legend(fontsize=8)
    fig.suptitle(f"Deletion curves (mean over explained examples and {seeds} seeds): the faster "
                 "the fall, the more faithful the map")
    return fig


def _auc_figure(table, seeds) -> Figure:
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    pos = np.arange(len(METHODS))
    for i, task in enumerate(TASKS):
        for what, ax in zip(("deletion", "insertion", "sanity"), axes):
            # Finite values only: the sanity correlation of an all-zero map is undefined.
            stats = [mean_sd([v for v in table[task][what][m] if np.isfinite(v)] or [np.nan])
                     for m in METHODS]
            ax.bar(pos + (i - 0.5) * 0.4, [s[0] for s in stats], 0.4, yerr=[s[1] for s in stats],
                   capsize=2, color=("#3182bd", "#e6550d")[i], label=task)
    for ax, title, ylabel in (
            (axes[0], "deletion AUC (lower = more faithful)", "AUC"),
            (axes[1], "insertion AUC (higher = more faithful)", "AUC"),
            (axes[2], "sanity: rank correlation, trained vs random weights", "Spearman rho")):
        ax.set_xticks(pos, [LABELS[m] for m in METHODS], fontsize=8, rotation=35, ha="right")
        ax.set(title=title, ylabel=ylabel, ylim=(0, 1.1))
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Faithfulness (Petsiuk et al. 2018) and the randomisation check (Adebayo et "
                 f"al. 2018), mean +- sd over {seeds} seeds")
    return fig


def _maps_figure(examples) -> Figure:
    fig = Figure(figsize=(14, 4.5), layout="constrained")
    axes = fig.subplots(2, len(METHODS) + 1)
    for r, task in enumerate(TASKS):
        x, maps = examples[task]
        for c in range(len(METHODS) + 1):
            ax = axes[r, c]
            if c == 0:
                data, title, cmap = x, "input", "gray_r"
            else:
                m = METHODS[c - 1]
                data, title, cmap = maps[m], LABELS[m], "RdBu_r"
            if task == "MNIST-1D":
                values = np.ravel(data)
                ax.plot(values, color="k" if c == 0 else COLORS[METHODS[c - 1]], lw=1)
                ax.axhline(0, color="gray", lw=0.5)
            else:
                image = np.asarray(data).reshape(8, 8)
                bound = float(np.max(np.abs(image))) or 1.0
                ax.imshow(image, cmap=cmap, vmin=0 if c == 0 else -bound, vmax=bound)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(task)
    fig.suptitle("The maps of one test example (last seed), as ranked by the deletion test "
                 "(|gradient| for saliency and SmoothGrad)")
    return fig


def _nan_mean_sd(values, digits: int = 2) -> str:
    """``fmt_mean_sd`` over the finite values, with how many seeds had none (a constant map)."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "undefined (constant maps)"
    text = fmt_mean_sd(finite, digits)
    return text if len(finite) == len(values) else f"{text} ({len(values) - len(finite)} of " \
                                                   f"{len(values)} seeds undefined)"


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(3, 10))
    seeds = len(seed_values)
    n_explain = 64 if quick else 200
    datasets = {"MNIST-1D": jl.data.load_mnist1d(),
                "digits": jl.data.load_digits(as_images=True)}
    methods = {task: _methods(task) for task in TASKS}
    table = {task: {what: {m: [] for m in METHODS} for what in ("deletion", "insertion",
                                                                   "sanity")}
             for task in TASKS}
    accuracy = {task: [] for task in TASKS}
    cam_zero = {task: [] for task in TASKS}
    curves = {task: {m: [] for m in METHODS} for task in TASKS}
    end_gap, examples, fraction = 0.0, {}, None
    total, done = seeds * len(TASKS), 0
    for seed in seed_values:
        for task in TASKS:
            result = _one_seed(task, seed, methods[task], datasets, quick=quick,
                               n_explain=n_explain)
            accuracy[task].append(result["accuracy"])
            cam_zero[task].append(result["cam_zero"])
            for what in ("deletion", "insertion", "sanity"):
                for m in METHODS:
                    table[task][what][m].append(result[what][m])
            for m in METHODS:
                curves[task][m].append(result["curve"][m])
            ends = [result["curve"][m][-1] for m in METHODS]
            end_gap = max(end_gap, float(np.max(ends) - np.min(ends)))
            examples[task] = (result["example"], result["example_maps"])
            fraction = result["fraction"]
            done += 1
            if progress:
                progress(done, total)

    def mean(values):
        return float(np.mean(values))

    petsiuk = ("Petsiuk et al. 2018 (RISE): a map is faithful when deleting its top-ranked "
               "features lowers the class probability faster than a random order; 0 = no better")
    checks = []
    for task in TASKS:
        checks.append(Check.sample(
            f"{task}: CNN test accuracy", accuracy[task], ">=", ACCURACY_FLOOR,
            source=f"practical margin {ACCURACY_FLOOR:g}: far above chance (0.1), so the maps "
                   "explain a model that has learnt the task"))
        for m in GRADIENT_METHODS:
            checks.append(Check.sample(
                f"{task}: deletion AUC, {LABELS[m]} minus random map (paired over seeds)",
                np.subtract(table[task]["deletion"][m], table[task]["deletion"]["random"]),
                "<", 0.0, source=petsiuk))
    checks.append(Check(
        "random map: rank correlation of its maps for the trained and the randomised model "
        "(min over tasks and seeds)",
        min(min(table[task]["sanity"]["random"]) for task in TASKS), ">=", 0.9999, exact=True,
        source="theory (sanity): a random map does not depend on the weights, so the "
               "randomisation test gives 1 (float rounding aside)"))
    checks.append(Check(
        "deletion curves: spread of the last point (all entries deleted) over methods",
        end_gap, "<=", 1e-6, exact=True,
        source="theory (sanity): every curve ends at the all-zero input, whatever the map"))

    ranking = {task: sorted(METHODS, key=lambda m: mean(table[task]["deletion"][m]))
               for task in TASKS}
    tables = {}
    for task in TASKS:
        rows = []
        for rank, m in enumerate(ranking[task], 1):
            diff = np.subtract(table[task]["deletion"][m], table[task]["deletion"]["random"])
            rows.append((rank, LABELS[m], fmt_mean_sd(table[task]["deletion"][m]),
                         "-" if m == "random" else fmt_mean_sd(diff),
                         fmt_mean_sd(table[task]["insertion"][m]),
                         _nan_mean_sd(table[task]["sanity"][m])))
        tables[f"{task}: methods ranked by deletion AUC (mean +- sd over {seeds} seeds; test "
               f"accuracy {fmt_mean_sd(accuracy[task])})"] = markdown_table(
            ("rank", "method", "deletion AUC (lower: faithful)", "minus random (paired)",
             "insertion AUC (higher: faithful)", "sanity rho (trained vs random weights)"),
            rows)
    figures = {"deletion_curves": _curves_figure(curves, fraction, seeds),
               "auc": _auc_figure(table, seeds), "maps": _maps_figure(examples)}
    order = {task: ", ".join(LABELS[m] for m in ranking[task]) for task in TASKS}
    cam_digits = np.subtract(table["digits"]["deletion"]["grad_cam"],
                             table["digits"]["deletion"]["random"])
    cam_check = next(c for c in checks if c.what.startswith("digits: deletion AUC, Grad-CAM"))
    notes = (
        f"Both CNNs are trained with Adam (lr 3e-3, batch {BATCH_SIZE}) for "
        f"{EPOCHS['MNIST-1D'][0 if quick else 1]} epochs (MNIST-1D, the published 4000/1000 "
        f"split) and {EPOCHS['digits'][0 if quick else 1]} epochs (digits, a new 70/30 split "
        f"per seed); the first {n_explain} test examples are explained for the predicted "
        "class, and ties within a map are deleted in random order. Ranking by mean deletion "
        f"AUC: MNIST-1D: {order['MNIST-1D']}; digits: {order['digits']}. "
        "Grad-CAM against the random map on the digits: deletion AUC difference "
        f"{fmt_mean_sd(cam_digits)} ({cam_check.verdict}). Its map is all 0 for "
        f"{mean(cam_zero['digits']):.0%} of the explained digits (MNIST-1D: "
        f"{mean(cam_zero['MNIST-1D']):.0%}): behind a flatten + dense head each position of "
        "the 4x4 grid has its own weights, their gradient averaged over the grid is a poor "
        "summary of what a channel does, and the weighted sum is negative everywhere, which "
        "the ReLU sets to 0; those digits are then deleted in random order. With ties broken "
        "by position instead, Grad-CAM's zero maps delete the digit row by row from the top "
        "and seem to beat the random map, an artefact of the order, not of the model. "
        "Deleting means setting to 0, which favours the maps that multiply by the input: "
        "gradient x input and integrated gradients (zero baseline) are exactly 0 on a digit's "
        "blank pixels and never spend a deletion step there, whereas |gradient| maps do. "
        "Occlusion measures what the test measures (the drop when a window is set to 0), so "
        "its good rank is by construction. The sanity column repeats saliency_sanity's "
        "finding: maps that multiply by the input stay correlated with the trained maps when "
        "the weights are random (about 0.9 on the digits, where half the pixels are 0), so a "
        "good deletion score does not make a map pass the randomisation test, and the random "
        "map, which ignores the model, scores 1 there."
        + (f" Quick mode: {seeds} seeds, {n_explain} examples explained." if quick else ""))
    return Outcome(
        name="attribution_faithfulness", claim=CLAIM, checks=checks,
        numbers={"deletion_auc": {t: table[t]["deletion"] for t in TASKS},
                 "insertion_auc": {t: table[t]["insertion"] for t in TASKS},
                 "sanity_spearman": {t: table[t]["sanity"] for t in TASKS},
                 "grad_cam_zero_map_fraction": cam_zero,
                 "test_accuracy": accuracy, "ranking": ranking,
                 "deletion_curve_mean": {t: {m: np.mean(curves[t][m], axis=0) for m in METHODS}
                                         for t in TASKS},
                 "fraction": fraction, "end_gap": end_gap, "n_explain": n_explain,
                 "n_steps": N_STEPS, "seed_values": list(seed_values), "seeds": seeds},
        figures=figures, tables=tables, notes=notes)
