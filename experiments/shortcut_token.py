"""Shortcut learning (Zech et al. 2018 in miniature): a "hospital token" that marks one class in
the training images is learnt instead of the digit, and saliency maps show it."""

from __future__ import annotations

import jax
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table, mean_sd

CLAIM = ("An MLP trained on digits in which a bright 2x2 corner token marks every '0' (phi = 1) "
         "learns the token as a shortcut (Zech et al. 2018): its accuracy drops on the clean test "
         "set (below the i.i.d. test set with the token and below a model trained without the "
         "token; on the '0's to <= 50%), drops much further when the token is put on the other "
         "digits, and its integrated-gradients attribution concentrates on the token's 4 pixels.")

CE = "softmax_cross_entropy_with_integer_labels"
TOKEN_CLASS = 0
TOKEN_SIZE = 2
MAIN_CORRELATION = 1.0
IMAGE_SHAPE = (8, 8, 1)
MODELS = ("clean model", "shortcut model")
TEST_SETS = {"i.i.d. (token as in training)": "accuracy_iid", "clean (no token)": "accuracy_clean",
             "token on every digit": "accuracy_cue_all",
             "token flipped (on the other digits)": "accuracy_cue_flipped"}
COLORS = {"clean model": "#3182bd", "shortcut model": "#e6550d"}


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


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    correlations = (0.0, 0.9, 1.0) if quick else (0.0, 0.5, 0.8, 0.9, 0.95, 1.0)
    epochs = 30 if quick else 50
    model = _model()
    optimizer = optax.adam(3e-3)
    x, y = jl.data.load_digits(as_images=True)
    results = {"clean model": {MAIN_CORRELATION: {}},
               "shortcut model": {c: {} for c in correlations}}
    total = seeds * (len(correlations) + 1) + 1
    done = 0
    for seed in range(seeds):
        key = jax.random.key(seed)
        k_split, k_init, k_fit, k_plant, k_test = jax.random.split(key, 5)
        data = jl.data.train_test_split(k_split, x, y, test_size=0.3)
        _, params0 = model.init(k_init, IMAGE_SHAPE)
        last = {}
        for name, correlation in [("clean model", None)] + [("shortcut model", c)
                                                            for c in correlations]:
            if correlation is None:
                x_train, has_token = data.x_train, None
            else:
                x_train, has_token = jl.shortcuts.plant_token_images(
                    k_plant, data.x_train, data.y_train, correlation=correlation,
                    token_class=TOKEN_CLASS, size=TOKEN_SIZE)
            fit = jl.fit(model.apply, params0, x_train, data.y_train, loss=CE,
                         optimizer=optimizer, key=k_fit, batch_size=64, epochs=epochs)
            measured = _measure(model, fit.params, data,
                                MAIN_CORRELATION if correlation is None else correlation, k_test)
            slot = results[name][MAIN_CORRELATION if correlation is None else correlation]
            for k, v in measured.items():
                slot.setdefault(k, []).append(v)
            if correlation in (None, MAIN_CORRELATION):
                last[name] = (fit.params, x_train, has_token)
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

    def mean(values):
        return float(np.mean(values))

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
    checks = [
        Check("shortcut model: i.i.d. (with token) minus clean test accuracy (mean over seeds)",
              mean(short["accuracy_iid"]) - mean(short["accuracy_clean"]), ">=", 0.03),
        Check("clean test accuracy: clean model minus shortcut model (mean over seeds)",
              mean(clean["accuracy_clean"]) - mean(short["accuracy_clean"]), ">=", 0.03),
        Check("shortcut model: accuracy on the '0's without the token (mean over seeds)",
              mean(short["token_class_accuracy_clean"]), "<=", 0.5),
        Check("accuracy drop when the token is flipped: shortcut minus clean model (mean)",
              mean(short["accuracy_drop_flipped"]) - mean(clean["accuracy_drop_flipped"]),
              ">=", 0.15),
        Check(f"shortcut model: mean share of |IG| on the token / area share ({area:.4f})",
              mean(short["cue_saliency_fraction"]) / area, ">=", 3.0),
        Check("mean share of |IG| on the token: shortcut / clean model",
              mean(short["cue_saliency_fraction"]) / mean(clean["cue_saliency_fraction"]),
              ">=", 1.5),
    ]
    return Outcome(
        name="shortcut_token", claim=CLAIM, checks=checks,
        numbers={"results": {name: {str(c): v for c, v in by_c.items()}
                             for name, by_c in results.items()},
                 "correlations": list(correlations), "token_class": TOKEN_CLASS,
                 "token_size": TOKEN_SIZE, "token_area_fraction": area, "epochs": epochs,
                 "seeds": seeds, "n_train": int(data.x_train.shape[0]),
                 "n_test": int(data.x_test.shape[0])},
        figures=figures,
        tables={f"Token on every training '0' (phi = 1): mean +- sd over {seeds} seeds":
                markdown_table(("test set / measure", "clean model", "shortcut model"),
                               rows_main),
                "Shortcut model vs the training correlation phi(token, label = 0)":
                markdown_table(("phi", "i.i.d. acc.", "clean acc.", "'0's w/o token",
                                "flipped acc.", "|IG| share on token"), rows_sweep)},
        notes=("Digits 8x8 (1797 images), a new stratified 70/30 split per seed; MLP 64-64-10 "
               f"(ReLU), Adam 3e-3, batch 64, {epochs} epochs. The token is a 2x2 patch of "
               "value 1 in the top-left corner, where digits are blank. 'clean' is the test set "
               "without any token; 'flipped' puts the token on every test digit except the '0's "
               "(the correlation reversed). The saliency share is the mean over test images "
               "carrying the token of sum_token |IG| / sum |IG| (integrated gradients, zero "
               "baseline, predicted class). The clean model never saw the token: its weights on "
               "those pixels keep their random initial values, so its share is not zero. The "
               "sweep shows that the shortcut takes over only when the token is (nearly) a "
               "perfect predictor: at phi = 0.95 the '0's without the token are still mostly "
               "recognised, at phi = 1 they are not."))
