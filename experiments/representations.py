"""Representations: hand-designed filters versus filters a network learns.

Before deep learning an expert chose the features: fixed image filters (edges, Laplacian) whose
responses feed a linear classifier. A convolutional network learns its filters from the labels
instead. On the 8x8 digits we compare logistic regression on fixed filter banks with a small CNN
(one 3x3 convolution with 8 learned filters, ReLU, a dense layer), trained on the same split.
"""

from __future__ import annotations

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Representations can be hand-designed or learned: a small CNN that learns its 3x3 "
         "filters from the labels, with no expert design, classifies the 8x8 digits as well as "
         "logistic regression on the best fixed filter bank (test accuracy at least the best "
         "fixed one minus 0.01).")

CE = "softmax_cross_entropy_with_integer_labels"
FILTERS = ("identity", "edge_x", "edge_y", "laplacian")
FEATURE_SETS = {"raw pixels (identity)": ("identity",),
                "Sobel edges (edge_x, edge_y)": ("edge_x", "edge_y"),
                "Laplacian": ("laplacian",),
                "all four fixed filters": FILTERS}
L2 = 1e-3         # same penalty for every feature set (not tuned per set)
N_LEARNED = 8     # learned 3x3 filters
MARGIN = 0.01     # ~1.5 standard errors of one accuracy on the 540 test digits


def _pad_columns(features, width):
    """Zero columns up to ``width``: they standardise to 0 and never change a logit, so the fitted
    model is the same, and every feature set has one shape (one compilation of the fit)."""
    return np.pad(features, ((0, 0), (0, width - features.shape[1])))


def _fixed_filter_accuracy(key, maps, split):
    """Logistic regression on each feature set; ``maps`` [n, 8, 8, 4] holds all FILTERS."""
    idx_train, y_train, idx_test, y_test = split
    width = 64 * len(FILTERS)
    accuracy = {}
    for name, filters in FEATURE_SETS.items():
        channels = [FILTERS.index(f) for f in filters]
        flat = _pad_columns(maps[..., channels].reshape(maps.shape[0], -1), width)
        stats = jl.data.fit_standardizer(flat[idx_train])
        params = jl.linear.fit_logistic_regression(
            key, jl.data.standardize(flat[idx_train], stats), y_train, n_classes=10, l2=L2)
        predicted = jl.linear.predict(params, jl.data.standardize(flat[idx_test], stats))
        accuracy[name] = float(np.mean(np.asarray(predicted) == y_test))
    return accuracy


def _cnn():
    return jl.nn.serial(jl.nn.conv2d(N_LEARNED, 3, padding="SAME"), jl.nn.relu, jl.nn.flatten(),
                        jl.nn.dense(10))


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    steps = 800 if quick else 2000
    learning_rate, batch_size = 3e-3, 32
    x, y = jl.data.load_digits(as_images=True)
    # The filters need no fitting: apply them to every image once, then split.
    maps = np.asarray(jl.features.apply_filters(x, FILTERS))            # [1797, 8, 8, 4]
    accuracy = {name: [] for name in (*FEATURE_SETS, "learned CNN")}
    total = seeds + 1
    for seed in range(seeds):
        k_split, k_lr, k_init, k_fit = jax.random.split(jax.random.key(seed), 4)
        idx = np.arange(len(y))
        split = jl.data.train_test_split(k_split, idx, y, test_size=0.3)
        for name, acc in _fixed_filter_accuracy(k_lr, maps, split).items():
            accuracy[name].append(acc)
        model = _cnn()
        _, params = model.init(k_init, (8, 8, 1))
        optimizer = jl.optim.make_optimizer("adamw", learning_rate, weight_decay=1e-4)
        result = jl.fit(model.apply, params, x[split.x_train], split.y_train, loss=CE,
                        optimizer=optimizer, key=k_fit, batch_size=batch_size, steps=steps)
        accuracy["learned CNN"].append(
            jl.evaluate(model.apply, result.params, x[split.x_test], split.y_test)["accuracy"])
        if seed == 0:
            first = (result.params, x[split.x_test][0], maps[split.x_test][0],
                     int(split.y_test[0]))
        if progress:
            progress(seed + 1, total)

    fig_filters = _filter_figure(first[0])
    fig_maps = _feature_map_figure(*first)
    if progress:
        progress(total, total)

    fixed_means = {name: float(np.mean(accuracy[name])) for name in FEATURE_SETS}
    best_fixed = max(fixed_means, key=fixed_means.get)
    cnn_mean = float(np.mean(accuracy["learned CNN"]))
    n_params_cnn = jl.nn.count_params(first[0])
    rows = [(name, 64 * len(filters), 64 * len(filters) * 10 + 10, fmt_mean_sd(accuracy[name]))
            for name, filters in FEATURE_SETS.items()]
    rows.append((f"learned CNN ({N_LEARNED} learned 3x3 filters)", 64 * N_LEARNED, n_params_cnn,
                 fmt_mean_sd(accuracy["learned CNN"])))
    return Outcome(
        name="representations", claim=CLAIM,
        checks=[Check(f"learned CNN test accuracy - best fixed filter bank ({best_fixed}), "
                      "means over seeds", cnn_mean - fixed_means[best_fixed], ">=", -MARGIN),
                Check("learned CNN test accuracy (mean)", cnn_mean, ">=", 0.95)],
        numbers={"test_accuracy": accuracy, "best_fixed": best_fixed, "l2": L2,
                 "cnn": {"filters": N_LEARNED, "steps": steps, "batch_size": batch_size,
                         "learning_rate": learning_rate, "optimizer": "adamw",
                         "weight_decay": 1e-4, "params": n_params_cnn},
                 "n_train": len(split.x_train), "n_test": len(split.x_test), "seeds": seeds},
        figures={"filters": fig_filters, "feature_maps": fig_maps},
        tables={f"Digits test accuracy ({len(split.x_test)} test images), mean +- sd over "
                f"{seeds} seed(s)":
                markdown_table(("representation", "features", "parameters", "test accuracy"),
                               rows)},
        notes=("Each seed draws its own stratified 70/30 split; the fixed-filter models are "
               "logistic regressions on the standardised, flattened filter responses with the "
               f"same L2 penalty {L2}. The best fixed bank is chosen by its test accuracy, which "
               "favours the fixed filters. The margin 0.01 is about 1.5 standard errors of one "
               "accuracy measured on 540 test digits."))


def _show_kernel(ax, kernel, title):
    limit = float(np.max(np.abs(kernel))) or 1.0
    ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _filter_figure(params):
    learned = np.asarray(params[0]["w"])[:, :, 0, :]                   # [3, 3, N_LEARNED]
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    rows = fig.subfigures(1, 2, width_ratios=[len(FILTERS), N_LEARNED / 2])
    axes = rows[0].subplots(1, len(FILTERS))
    for ax, name in zip(axes, FILTERS):
        _show_kernel(ax, jl.features.FILTERS[name], name)
    rows[0].suptitle("hand-designed 3x3 filters")
    axes = rows[1].subplots(2, N_LEARNED // 2)
    for i, ax in enumerate(axes.ravel()):
        _show_kernel(ax, learned[:, :, i], f"learned {i}")
    rows[1].suptitle("first-layer filters learned by the CNN (seed 0)")
    fig.suptitle("Filters, each on its own symmetric colour scale (red positive, blue negative, "
                 "white 0)")
    return fig


def _feature_map_figure(params, image, fixed_maps, label):
    conv = jl.nn.conv2d(N_LEARNED, 3, padding="SAME")
    learned_maps = np.asarray(conv.apply(params[0], image[None]))[0]   # [8, 8, N_LEARNED]
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(2, 1 + N_LEARNED)
    axes[0, 0].imshow(image[:, :, 0], cmap="gray_r")
    axes[0, 0].set_title(f"input (digit {label})", fontsize=8)
    for i, name in enumerate(FILTERS):
        axes[0, 1 + i].imshow(fixed_maps[:, :, i], cmap="RdBu_r",
                              vmin=-np.abs(fixed_maps[:, :, i]).max(),
                              vmax=np.abs(fixed_maps[:, :, i]).max())
        axes[0, 1 + i].set_title(f"fixed: {name}", fontsize=8)
    for ax in axes[0, 1 + len(FILTERS):]:
        ax.axis("off")
    axes[1, 0].axis("off")
    for i in range(N_LEARNED):
        limit = np.abs(learned_maps[:, :, i]).max() or 1.0
        axes[1, 1 + i].imshow(learned_maps[:, :, i], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[1, 1 + i].set_title(f"learned {i}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Feature maps of one test digit: fixed filters (top) and the CNN's learned "
                 "filters before the ReLU (bottom); red positive, blue negative")
    return fig
