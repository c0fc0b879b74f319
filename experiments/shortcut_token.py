"""Shortcut learning (Zech et al. 2018 in miniature): a "hospital token" that marks one class in
the training images is learnt instead of the digit, and saliency maps show it.

Every check is measured over seeds, on the mean with its 95% Student-t interval, and every
comparison between the two models is paired: seed s draws the split, the initial weights (shared
by both models), the shuffling and the token's placement, so the per-seed differences remove the
seed-to-seed variation both models share. Thresholds and their sources:

- the '0's without the token: at most 50% recognised (the claim: "on the '0's to <= 50%"). Its
  per-seed values are skewed (most near 0, a few up to ~0.3); the t interval is kept, as a
  percentile bootstrap of 10 values is too narrow to trust, and the t interval is usually the
  wider of the two at this n;
- the clean-test drop (i.i.d. minus clean, and clean model minus shortcut model): at least 3
  points, a stated practical margin: a model that lost every '0' would lose ~10 points (the '0's
  share of the test set), so 3 points is a third of that and ~4x the binomial sd (0.007) of a
  ~97% accuracy on 540 test images;
- the flipped drop, shortcut minus clean model: at least 15 points, a practical margin for "much
  further": more than the ~10 points that losing the '0's alone costs on the clean set, plus 5;
- integrated gradients on the token: the share of |IG| on the token's 4 pixels, shortcut model over
  the clean model of the same seed (which never saw the token) at least 1.5, a practical margin
  ("half as much again"). The earlier bar, 3x the token's area share, was met by the clean model
  itself on one seed (its token weights keep their random initial values): the control is the
  comparison, not the area.

Zech et al. 2018 (PLOS Medicine 15(11): e1002683) stand beside ours in a literature row; their
setting differs in kind (see the row's note). All models of a seed (the clean model and one
shortcut model per training correlation) train as one stacked program (one jl.fit, members
vmapped, the same initial weights and batch order). Seeds: quick 3 (~40 s), full 10 (t = 2.26
on 9 df; ~30 s on the shared 2-core CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import jaxlearn as jl
from experiments import seed_list, transfer
from jaxlearn import report
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table, mean_sd

DATA = ("stand-in: scikit-learn's bundled 8x8 digits with a planted corner token, for Zech "
        "et al.'s chest X-rays and hospital token")
CLAIM = ("An MLP trained on digits in which a bright 2x2 corner token marks every '0' (phi = 1) "
         "learns the token as a shortcut (Zech et al. 2018): its accuracy drops on the clean test "
         "set (below the i.i.d. test set with the token and below a model trained without the "
         "token; on the '0's to <= 50%), drops much further when the token is put on the other "
         "digits, and its integrated-gradients attribution concentrates on the token's 4 pixels "
         "(at least 1.5x the share that the same network trained without the token puts there).")

TOKEN_CLASS = 0
TOKEN_SIZE = 2
MAIN_CORRELATION = 1.0
IMAGE_SHAPE = (8, 8, 1)
MODELS = ("clean model", "shortcut model")
TEST_SETS = {"i.i.d. (token as in training)": "accuracy_iid", "clean (no token)": "accuracy_clean",
             "token on every digit": "accuracy_cue_all",
             "token flipped (on the other digits)": "accuracy_cue_flipped"}
COLORS = {"clean model": "#3182bd", "shortcut model": "#e6550d"}
# Practical margins (module docstring): the clean-test drop, the flipped drop (shortcut minus clean
# model) and the IG-share ratio (shortcut over clean model, same seed).
CLEAN_DROP = 0.03
FLIPPED_DROP = 0.15
IG_RATIO = 1.5
# Zech et al. 2018 (PLOS Medicine 15(11): e1002683), abstract: the pneumonia model trained on
# MSH + NIH had internal AUC 0.931 and AUC 0.815 at the external hospital (IU); a CNN could also
# tell the hospital system a radiograph came from with "extremely high accuracy".
ZECH = "Zech et al. 2018 (PLOS Med.), abstract"
ZECH_INTERNAL_MINUS_EXTERNAL = 0.931 - 0.815


def _model() -> jl.nn.Layer:
    return jl.nn.serial(jl.nn.flatten(), jl.nn.mlp((64,), 10))


def _measure(model, params, data, correlation, key) -> dict:
    """shortcut_report on the clean test set (integrated gradients for the saliency share), plus
    the accuracy on an i.i.d. test set that carries the token as the training set did."""
    cue = jl.shortcuts.token_cue(IMAGE_SHAPE, size=TOKEN_SIZE)
    result = jl.shortcuts.shortcut_report(model.apply, params, data.x_test, data.y_test, cue,
                                          token_class=TOKEN_CLASS,
                                          saliency="integrated_gradients")
    x_iid, _ = jl.shortcuts.plant_token_images(key, data.x_test, data.y_test,
                                               correlation=correlation, token_class=TOKEN_CLASS,
                                               size=TOKEN_SIZE)
    result["accuracy_iid"] = jl.evaluate(model.apply, params, x_iid, data.y_test)["accuracy"]
    result["token_class_accuracy_clean"] = result["group_accuracy"][TOKEN_CLASS][0]
    return result


def _show(ax, image, title, *, cmap="gray_r", vmax=1.0, box=True):
    ax.imshow(np.asarray(image).reshape(8, 8), cmap=cmap, vmin=0.0, vmax=vmax)
    if box:
        ax.add_patch(Rectangle((-0.5, -0.5), TOKEN_SIZE, TOKEN_SIZE, fill=False, lw=1.5,
                               edgecolor="#d62728"))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _token_figure(data, x_train, has_token, model, params) -> Figure:
    """Training images with and without the token; flipped test images and the shortcut
    model's prediction."""
    y_train, y_test = np.asarray(data.y_train), np.asarray(data.y_test)
    with_token = np.flatnonzero(np.asarray(has_token))[:6]
    others = [np.flatnonzero((y_train == c) & ~np.asarray(has_token))[0] for c in range(1, 7)]
    cue = jl.shortcuts.token_cue(IMAGE_SHAPE, size=TOKEN_SIZE)
    picks = np.concatenate([np.flatnonzero(y_test == c)[:1] for c in range(1, 7)])
    flipped = np.asarray(jl.shortcuts.apply_cue(np.asarray(data.x_test)[picks], cue))
    predicted = np.asarray(jl.predict(model.apply, params, flipped)).argmax(1)
    fig = Figure(figsize=(9, 4.9), layout="constrained")
    axes = fig.subplots(3, 6)
    for c in range(6):
        _show(axes[0, c], x_train[with_token[c]], f"train, label {y_train[with_token[c]]}")
        _show(axes[1, c], x_train[others[c]], f"train, label {y_train[others[c]]}")
        _show(axes[2, c], flipped[c], f"test {y_test[picks[c]]} + token -> {predicted[c]}")
    axes[0, 0].set_ylabel("token (every '0')", fontsize=8)
    axes[1, 0].set_ylabel("no token", fontsize=8)
    axes[2, 0].set_ylabel("flipped test", fontsize=8)
    fig.suptitle(f"The 'hospital token': a {TOKEN_SIZE}x{TOKEN_SIZE} bright patch (red box) on "
                 "every training '0' (phi = 1);\nbottom: test digits given the token, with the "
                 "shortcut model's prediction")
    return fig


def _saliency_figure(model, params_by_model, data) -> Figure:
    """|gradient| and |integrated gradients| of the clean and the shortcut model on test digits
    that carry the token."""
    y_test = np.asarray(data.y_test)
    picks = np.concatenate([np.flatnonzero(y_test == 0)[:2]]
                           + [np.flatnonzero(y_test == c)[:1] for c in (3, 5, 7, 9)])
    cue = jl.shortcuts.token_cue(IMAGE_SHAPE, size=TOKEN_SIZE)
    x = jl.shortcuts.apply_cue(np.asarray(data.x_test)[picks], cue)
    rows = [("input", np.asarray(x), None)]
    for name in MODELS:
        params = params_by_model[name]
        predicted = np.asarray(jl.predict(model.apply, params, x)).argmax(1)
        rows.append((f"{name}\n|gradient|",
                     np.abs(np.asarray(jl.explain.saliency(model.apply, params, x))), predicted))
        rows.append((f"{name}\n|integr. gradients|",
                     np.abs(np.asarray(jl.explain.integrated_gradients(model.apply, params, x))),
                     predicted))
    fig = Figure(figsize=(9, 8.2), layout="constrained")
    axes = fig.subplots(len(rows), len(picks))
    for r, (label, maps, predicted) in enumerate(rows):
        for c in range(len(picks)):
            if predicted is None:
                _show(axes[r, c], maps[c], f"digit {y_test[picks[c]]} + token")
            else:
                _show(axes[r, c], maps[c], f"predicts {predicted[c]}", cmap="magma",
                      vmax=float(maps[c].max()) or 1.0)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Saliency on test digits carrying the token (red box); each map scaled to its "
                 "own maximum.\nThe shortcut model's attribution piles up on the token, the clean "
                 "model's follows the strokes")
    return fig


def _accuracy_figure(results, correlations, seeds) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax_sweep = fig.subplots(1, 2, width_ratios=(1.3, 1))
    positions = np.arange(len(TEST_SETS))
    for i, name in enumerate(MODELS):
        stats = [mean_sd(results[name][MAIN_CORRELATION][key]) for key in TEST_SETS.values()]
        ax.bar(positions + (i - 0.5) * 0.38, [m for m, _ in stats], 0.38,
               yerr=[s for _, s in stats], color=COLORS[name], label=name, capsize=3)
    ax.set_xticks(positions, [t.replace(" (", "\n(") for t in TEST_SETS], fontsize=8)
    ax.set(ylabel="test accuracy", ylim=(0, 1.05),
           title=f"Test sets (token on every training '0', mean +- sd over {seeds} seeds)")
    ax.legend(fontsize=8, loc="lower left")
    for key, label, style in (("token_class_accuracy_clean", "'0's without the token", "o-"),
                              ("accuracy_cue_flipped", "accuracy, token flipped", "s-"),
                              ("cue_saliency_fraction", "share of |IG| on the token", "^-")):
        stats = [mean_sd(results["shortcut model"][c][key]) for c in correlations]
        ax_sweep.errorbar(correlations, [m for m, _ in stats], yerr=[s for _, s in stats],
                          fmt=style, capsize=3, label=label)
    area = TOKEN_SIZE ** 2 / 64
    ax_sweep.axhline(area, color="gray", ls=":", label=f"token's area share ({area:.3f})")
    ax_sweep.set(xlabel="phi(token, label = 0) in the training set", ylabel="value", ylim=(0, 1.05),
                 title="Shortcut model vs strength of the spurious correlation")
    ax_sweep.legend(fontsize=7, loc="center left")
    return fig


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(3, 10))
    seeds = len(seed_values)
    correlations = (0.0, 0.9, 1.0) if quick else (0.0, 0.5, 0.8, 0.9, 0.95, 1.0)
    epochs = 30 if quick else 50
    model = _model()
    optimizer = optax.adam(3e-3)
    x, y = jl.data.load_digits(as_images=True)
    results = {"clean model": {MAIN_CORRELATION: {}},
               "shortcut model": {c: {} for c in correlations}}
    total = seeds * (len(correlations) + 1) + 1
    done = 0
    runs = [("clean model", None)] + [("shortcut model", c) for c in correlations]
    apply_m = transfer.stacked(model.apply)
    for seed in seed_values:
        key = jax.random.key(seed)
        k_split, k_init, k_fit, k_plant, k_test = jax.random.split(key, 5)
        data = jl.data.train_test_split(k_split, x, y, test_size=0.3)
        _, params0 = model.init(k_init, IMAGE_SHAPE)
        planted = [(data.x_train, None) if c is None else jl.shortcuts.plant_token_images(
            k_plant, data.x_train, data.y_train, correlation=c, token_class=TOKEN_CLASS,
            size=TOKEN_SIZE) for _, c in runs]
        # All models of a seed in one stacked fit: the same initial weights and batch order, each
        # member on its own training images (with the token planted at its correlation).
        fit = jl.fit(apply_m, transfer.stack_params([params0] * len(runs)),
                     jnp.stack([x_train for x_train, _ in planted], axis=1),
                     jnp.broadcast_to(jnp.asarray(data.y_train)[:, None],
                                      (data.y_train.shape[0], len(runs))),
                     loss=transfer.summed_cross_entropy, optimizer=optimizer, key=k_fit,
                     batch_size=64, epochs=epochs)
        last = {}
        for j, ((name, correlation), (x_train, has_token)) in enumerate(zip(runs, planted)):
            params = jax.tree.map(lambda leaf, j=j: leaf[j], fit.params)
            measured = _measure(model, params, data,
                                MAIN_CORRELATION if correlation is None else correlation, k_test)
            slot = results[name][MAIN_CORRELATION if correlation is None else correlation]
            for k, v in measured.items():
                slot.setdefault(k, []).append(v)
            if correlation in (None, MAIN_CORRELATION):
                last[name] = (params, x_train, has_token)
            done += 1
            if progress:
                progress(done, total)

    params_by_model = {name: last[name][0] for name in MODELS}
    figures = {
        "token": _token_figure(data, np.asarray(last["shortcut model"][1]),
                               last["shortcut model"][2], model,
                               params_by_model["shortcut model"]),
        "saliency": _saliency_figure(model, params_by_model, data),
        "accuracy": _accuracy_figure(results, correlations, seeds)}
    if progress:
        progress(total, total)

    clean, short = results["clean model"][MAIN_CORRELATION], results["shortcut model"][
        MAIN_CORRELATION]

    area = TOKEN_SIZE ** 2 / 64
    rows_main = [(label, fmt_mean_sd(clean[key]), fmt_mean_sd(short[key]))
                 for label, key in (*TEST_SETS.items(),
                                    ("'0's without the token", "token_class_accuracy_clean"),
                                    ("worst (label, token) group", "worst_group_accuracy"),
                                    ("token alone (blank image) -> '0'", "token_only_accuracy"),
                                    ("share of |IG| on the token", "cue_saliency_fraction"))]
    rows_sweep = [(c, *(fmt_mean_sd(results["shortcut model"][c][key])
                        for key in ("accuracy_iid", "accuracy_clean", "token_class_accuracy_clean",
                                    "accuracy_cue_flipped", "cue_saliency_fraction")))
                  for c in correlations]

    ig_ratio = np.divide(short["cue_saliency_fraction"], clean["cue_saliency_fraction"])
    drop_source = (f"practical margin {CLEAN_DROP:g}: a third of the ~0.10 that losing every '0' "
                   "costs")
    checks = [
        Check.sample("shortcut model: i.i.d. (with token) minus clean test accuracy (paired over "
                     "test sets)", np.subtract(short["accuracy_iid"], short["accuracy_clean"]),
                     ">=", CLEAN_DROP, source=drop_source),
        Check.sample("clean test accuracy: clean minus shortcut model (paired over seeds)",
                     np.subtract(clean["accuracy_clean"], short["accuracy_clean"]), ">=",
                     CLEAN_DROP, source=drop_source),
        Check.sample("shortcut model: accuracy on the '0's without the token",
                     short["token_class_accuracy_clean"], "<=", 0.5,
                     source="the claim: the '0's fall to <= 50% without the token"),
        Check.sample("accuracy drop when the token is flipped: shortcut minus clean model "
                     "(paired over seeds)",
                     np.subtract(short["accuracy_drop_flipped"], clean["accuracy_drop_flipped"]),
                     ">=", FLIPPED_DROP,
                     source=f"practical margin {FLIPPED_DROP:g} for 'much further': more than "
                            "the ~0.10 that losing the '0's costs, plus 0.05"),
        Check.sample("share of |IG| on the token: shortcut / clean model (ratio per seed, same "
                     "split and init)", ig_ratio, ">=", IG_RATIO,
                     source=f"practical margin {IG_RATIO:g}x the control that never saw the token "
                            "(replaces a fixed 3x area share, which the control itself reached)"),
    ]
    literature = [
        report.literature_row(
            ZECH, "internal minus external performance (AUC; ours: accuracy)",
            ZECH_INTERNAL_MINUS_EXTERNAL,
            np.subtract(short["accuracy_iid"], short["accuracy_clean"]),
            note="theirs: pneumonia AUC on held-out MSH+NIH radiographs (0.931) minus at the "
                 "external IU site (0.815), a partial confounder (pneumonia prevalence per "
                 "hospital) among other site differences; ours: i.i.d. minus clean accuracy of a "
                 "digits MLP with a token on every '0' (phi = 1), capped near 0.10 by the '0's "
                 "share. Different metric and confounder strength: comparable in kind only. "
                 "(Their CNNs also told the hospital system with extremely high accuracy; our "
                 "analogue, a blank image with the token read as a '0', is one image per seed, "
                 "so it is in the table, not in a row.)"),
    ]
    return Outcome(
        name="shortcut_token", claim=CLAIM, checks=checks, literature=literature,
        numbers={"results": {name: {str(c): v for c, v in by_c.items()}
                             for name, by_c in results.items()},
                 "correlations": list(correlations), "token_class": TOKEN_CLASS,
                 "token_size": TOKEN_SIZE, "token_area_fraction": area, "epochs": epochs,
                 "ig_share_ratio_shortcut_over_clean": ig_ratio.tolist(),
                 "ig_share_over_area": {name: (np.asarray(results[name][MAIN_CORRELATION][
                     "cue_saliency_fraction"]) / area).tolist() for name in MODELS},
                 "seeds": seeds, "n_train": int(data.x_train.shape[0]),
                 "n_test": int(data.x_test.shape[0])},
        figures=figures,
        tables={f"Token on every training '0' (phi = 1): mean +- sd over {seeds} seeds":
                markdown_table(("test set / measure", "clean model", "shortcut model"),
                               rows_main),
                "Shortcut model vs the training correlation phi(token, label = 0)":
                markdown_table(("phi", "i.i.d. acc.", "clean acc.", "'0's w/o token",
                                "flipped acc.", "|IG| share on token"), rows_sweep)},
        notes=("Digits 8x8 (1797 images), a new stratified 70/30 split per seed; MLP 64-10 "
               f"(ReLU), Adam 3e-3, batch 64, {epochs} epochs. The token is a 2x2 patch of "
               "value 1 in the top-left corner, where digits are blank. 'clean' is the test set "
               "without any token; 'flipped' puts the token on every test digit except the '0's "
               "(the correlation reversed). The saliency share is the mean over test images "
               "carrying the token of sum_token |IG| / sum |IG| (integrated gradients, zero "
               "baseline, predicted class). The clean model never saw the token: its weights on "
               "those pixels keep their random initial values, so its share is not zero. The "
               "sweep shows that the shortcut takes over only when the token is (nearly) a "
               "perfect predictor: at phi = 0.95 the '0's without the token are still mostly "
               "recognised, at phi = 1 they are not, so the claim is about the degenerate "
               "case of a perfect confounder, not Zech et al.'s partial one. Share of |IG| on "
               "the token over its area share: clean model "
               f"{fmt_mean_sd(np.asarray(clean['cue_saliency_fraction']) / area, 2)}, shortcut "
               f"model {fmt_mean_sd(np.asarray(short['cue_saliency_fraction']) / area, 2)}: the "
               "clean model alone is already well above 1x, which is why the check compares "
               "the two models of each seed rather than the area."
               + (f" Quick mode: {seeds} seeds, {epochs} epochs and a 3-point sweep; checks that "
                  "a few seeds cannot decide stay inconclusive." if quick else "")))
