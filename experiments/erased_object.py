"""Dataset bias (Bissoto et al. 2019 in miniature): when the background's statistics correlate with
the label, a classifier that never sees the object still beats chance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table, mean_sd

CLAIM = ("On scenes whose background brightness follows the class with probability 0.8 (digits "
         "pasted on 16x16 backgrounds), an MLP trained and tested with the object erased, or on "
         "a 2-pixel border only, still beats chance by >= 15 points (Bissoto et al. 2019), while "
         "on a control set whose backgrounds are independent of the class it stays within 5 "
         "points of chance.")

CE = "softmax_cross_entropy_with_integer_labels"
CANVAS = 16         # scene side, pixels
OBJECT = 8          # the 8x8 digit
BORDER = 2          # the digit never touches this frame, so the border is background only
BIAS = 0.8          # P(background style = label) in the biased set; the control has 0
NOISE = 0.05        # per-pixel noise of the background
VIEWS = ("whole scene", "object erased", "object only (box)", "border only")
DATASETS = {"biased": BIAS, "control": 0.0}
COLORS = {"biased": "#e6550d", "control": "#3182bd"}


@jax.jit
def _scene_parts(key, digits, labels, bias):
    """The pieces of digits pasted at random positions on class-biased backgrounds.

    Each scene gets a background style ``s``: its label with probability ``bias``, otherwise a
    uniform class; the background is ``0.05 + 0.05 s`` plus N(0, NOISE^2) noise per pixel. The
    digit (``[n, 8, 8, 1]``) goes in an 8x8 box whose top-left corner is uniform in
    ``[BORDER, CANVAS - OBJECT - BORDER]``.

    Returns ``(pasted digits [n, 16, 16, 1] (zero outside the box), background [n, 16, 16, 1],
    boxes [n, 4] (top, left, bottom, right), style [n])``.
    """
    n = labels.shape[0]
    k_biased, k_style, k_position, k_noise = jax.random.split(key, 4)
    random_style = jax.random.randint(k_style, (n,), 0, 10)
    style = jnp.where(jax.random.bernoulli(k_biased, bias, (n,)), labels, random_style)
    brightness = (0.05 + 0.05 * style).astype(jnp.float32)[:, None, None, None]
    background = brightness + NOISE * jax.random.normal(k_noise, (n, CANVAS, CANVAS, 1))
    corner = jax.random.randint(k_position, (n, 2), BORDER, CANVAS - OBJECT - BORDER + 1)
    pasted = jax.vmap(lambda d, c: jax.lax.dynamic_update_slice(
        jnp.zeros((CANVAS, CANVAS, 1)), d, (c[0], c[1], 0)))(digits, corner)
    return pasted, background, jnp.concatenate([corner, corner + OBJECT], axis=1), style


def _views(key, digits, labels, bias) -> tuple[dict, np.ndarray]:
    """Scenes (the digit replaces the background in its box) and their Bissoto ablations, by
    name, and the background styles ``[n]``."""
    pasted, background, boxes, style = _scene_parts(key, jnp.asarray(digits),
                                                     jnp.asarray(labels), bias)
    masks = jl.shortcuts.box_masks(boxes, CANVAS, CANVAS)
    scenes = jnp.where(masks[..., None], pasted, background)
    return {"whole scene": scenes,
            "object erased": jl.shortcuts.erase_object(scenes, masks),
            "object only (box)": jl.shortcuts.keep_bbox(scenes, boxes),
            "border only": jl.shortcuts.keep_border(scenes, BORDER)}, np.asarray(style)


def _examples_figure(examples, labels) -> Figure:
    fig = Figure(figsize=(12, 5.6), layout="constrained")
    for subfig, name in zip(fig.subfigures(1, 2, wspace=0.04), DATASETS):
        views, styles = examples[name]
        axes = subfig.subplots(len(labels), len(VIEWS))
        for r in range(len(labels)):
            for c, view in enumerate(VIEWS):
                axes[r, c].imshow(np.asarray(views[view][r, :, :, 0]), cmap="gray_r", vmin=0,
                                  vmax=1)
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
                if r == 0:
                    axes[r, c].set_title(view, fontsize=8)
            axes[r, 0].set_ylabel(f"label {labels[r]}\nbackground {styles[r]}", fontsize=8)
        subfig.suptitle(f"{name}: P(background style = label) = {DATASETS[name]}", fontsize=10)
    fig.suptitle("Scenes and their ablations (the background's brightness is its style)")
    return fig


def _accuracy_figure(accuracy, sweep, chance, seeds) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax_sweep = fig.subplots(1, 2, width_ratios=(1.3, 1))
    positions = np.arange(len(VIEWS))
    for i, name in enumerate(DATASETS):
        stats = [mean_sd(accuracy[name][view]) for view in VIEWS]
        ax.bar(positions + (i - 0.5) * 0.38, [m for m, _ in stats], 0.38,
               yerr=[s for _, s in stats], color=COLORS[name], capsize=3,
               label=f"{name} (P(style = label) = {DATASETS[name]})")
    ax.axhline(chance, color="black", ls="--", lw=1, label=f"chance ({chance:.3f})")
    ax.set_xticks(positions, VIEWS, fontsize=8)
    ax.set(ylabel="test accuracy", ylim=(0, 1.05),
           title=f"Trained and tested on each view (mean +- sd over {seeds} seeds)")
    ax.legend(fontsize=8, loc="upper right")
    biases = sorted(sweep)
    stats = [mean_sd(sweep[b]) for b in biases]
    ax_sweep.errorbar(biases, [m for m, _ in stats], yerr=[s for _, s in stats], fmt="o-",
                      capsize=3, color=COLORS["biased"], label="object erased: measured")
    grid = np.linspace(0, 1, 11)
    ax_sweep.plot(grid, grid + (1 - grid) / 10, ":", color="gray",
                  label="reading the style perfectly")
    ax_sweep.axhline(chance, color="black", ls="--", lw=1, label="chance")
    ax_sweep.set(xlabel="P(background style = label)", ylabel="test accuracy", ylim=(0, 1.05),
                 title="Object erased: accuracy vs strength of the bias")
    ax_sweep.legend(fontsize=8, loc="upper left")
    return fig


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    epochs = 40 if quick else 80
    sweep_biases = (0.4,) if quick else (0.2, 0.4, 0.6, 1.0)
    model = jl.nn.serial(jl.nn.flatten(), jl.nn.mlp((128,), 10))
    optimizer = optax.adam(2e-3)
    x, y = jl.data.load_digits(as_images=True)
    accuracy = {name: {view: [] for view in VIEWS} for name in DATASETS}
    sweep = {b: [] for b in (*DATASETS.values(), *sweep_biases)}
    chances, examples = [], {}
    total = seeds * (len(DATASETS) * len(VIEWS) + len(sweep_biases)) + 1
    done = 0

    def train_and_test(key, data, bias, views):
        nonlocal done
        k_train, k_test, k_model = jax.random.split(key, 3)
        train, _ = _views(k_train, data.x_train, data.y_train, bias)
        test, test_style = _views(k_test, data.x_test, data.y_test, bias)
        result = {}
        for view in views:
            k_init, k_fit = jax.random.split(jax.random.fold_in(k_model, VIEWS.index(view)))
            _, params = model.init(k_init, (CANVAS, CANVAS, 1))
            fit = jl.fit(model.apply, params, train[view], data.y_train, loss=CE,
                         optimizer=optimizer, key=k_fit, batch_size=64, epochs=epochs)
            result[view] = jl.evaluate(model.apply, fit.params, test[view],
                                       data.y_test)["accuracy"]
            done += 1
            if progress:
                progress(done, total)
        return result, test, test_style

    for seed in range(seeds):
        k_split, k_scenes = jax.random.split(jax.random.key(seed))
        data = jl.data.train_test_split(k_split, x, y, test_size=0.3)
        y_test = np.asarray(data.y_test)
        chances.append(float(np.bincount(y_test, minlength=10).max() / y_test.size))
        for name, bias in DATASETS.items():
            result, test, style = train_and_test(k_scenes, data, bias, VIEWS)
            for view in VIEWS:
                accuracy[name][view].append(result[view])
            sweep[bias].append(result["object erased"])
            picks = [int(np.flatnonzero(y_test == c)[0]) for c in (1, 4, 7, 9)]
            examples[name] = ({v: np.asarray(test[v])[picks] for v in VIEWS},
                              [int(style[i]) for i in picks])
        for bias in sweep_biases:
            result, _, _ = train_and_test(k_scenes, data, bias, ("object erased",))
            sweep[bias].append(result["object erased"])

    chance = float(np.mean(chances))
    figures = {"ablations": _examples_figure(examples, [1, 4, 7, 9]),
               "accuracy": _accuracy_figure(accuracy, sweep, chance, seeds)}
    if progress:
        progress(total, total)

    def above_chance(name, view):
        return [a - c for a, c in zip(accuracy[name][view], chances)]

    checks = []
    for view in ("object erased", "border only"):
        checks.append(Check(f"biased, {view}: accuracy minus chance (min over seeds)",
                            min(above_chance("biased", view)), ">=", 0.15))
    for view in ("object erased", "border only"):
        checks.append(Check(f"control, {view}: |accuracy minus chance| (max over seeds)",
                            max(abs(d) for d in above_chance("control", view)), "<=", 0.05))
    rows = [(view, *(fmt_mean_sd(accuracy[name][view]) for name in DATASETS)) for view in VIEWS]
    sweep_rows = [(b, fmt_mean_sd(sweep[b]), f"{b + (1 - b) / 10:.3f}") for b in sorted(sweep)]
    return Outcome(
        name="erased_object", claim=CLAIM, checks=checks,
        numbers={"accuracy": accuracy,
                 "erased_accuracy_vs_bias": {str(b): v for b, v in sweep.items()},
                 "chance": chances, "bias": BIAS, "noise": NOISE, "canvas": CANVAS,
                 "border": BORDER, "epochs": epochs, "seeds": seeds},
        figures=figures,
        tables={f"Test accuracy per view, mean +- sd over {seeds} seeds (chance {chance:.3f})":
                markdown_table(("view (train and test)", f"biased (P = {BIAS})",
                                "control (P = 0)"), rows),
                "Object erased: accuracy vs P(background style = label)":
                markdown_table(("P(style = label)", "test accuracy",
                                "reading the style perfectly"), sweep_rows)},
        notes=("Each 8x8 digit is pasted in an 8x8 box at a random position of a 16x16 scene, "
               "never within 2 pixels of the edge; the background has brightness 0.05 + 0.05 s "
               f"plus N(0, {NOISE}^2) noise, with style s = the label with probability P and a "
               "uniform class otherwise. Views (jaxlearn.shortcuts): erase_object on the box "
               "(set to 0), keep_bbox, keep_border(width=2). One MLP (128 ReLU units) is trained "
               f"per view and data set (Adam 2e-3, batch 64, {epochs} epochs) on a 70/30 split "
               "drawn per seed, and tested on the same view of fresh scenes of the test digits; "
               "chance is the test set's majority-class share. The box's position does not "
               "depend on the class, so nothing of the object leaks into the erased view. "
               "'Reading the style perfectly' gives P + (1 - P) / 10; the MLP stays below it "
               "for P < 1 because it must learn a 10-level brightness decoder from labels that "
               "are wrong for the background in a fraction 1 - P of the training scenes. Both "
               "sets share the scenes' random draws (positions, noise), so their 'object only' "
               "views are the same images and give the same accuracy; with the object in view, "
               "the biased background still adds a few points (whole scene)."))
