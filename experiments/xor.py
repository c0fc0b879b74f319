"""XOR: the limit of linear models, and how one hidden layer removes it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("No linear model separates XOR (at most 3 of the 4 corners right: accuracy <= 0.75), "
         "while an MLP with one hidden layer classifies it perfectly.")

CE = "softmax_cross_entropy_with_integer_labels"


def _train_mlp(key, x, y, hidden, steps):
    model = jl.nn.mlp((hidden,), 2, activation="tanh")
    k_init, k_fit = jax.random.split(key)
    _, params = model.init(k_init, (2,))
    result = jl.fit(model.apply, params, x, y, loss=CE, optimizer=optax.adam(0.05), key=k_fit,
                    batch_size=min(64, x.shape[0]), steps=steps)
    return model, result.params


def _boundary(ax, predict, x, y, title):
    grid = np.linspace(-2.2, 2.2, 200, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    z = np.asarray(predict(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(gx.shape)
    ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], colors=["#9ecae1", "#fdae6b"], alpha=0.6)
    for label, marker, color in ((0, "o", "#08519c"), (1, "s", "#a63603")):
        sel = np.asarray(y) == label
        ax.scatter(np.asarray(x)[sel, 0], np.asarray(x)[sel, 1], s=8, marker=marker, c=color,
                   label=f"class {label}")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right", fontsize=7)


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    n_train, n_test = (200, 400) if quick else (400, 2000)
    steps = 600 if quick else 1500
    hidden = 8
    linear_acc, mlp_acc = [], []
    for seed in range(seeds):
        k_train, k_test, k_lin, k_mlp = jax.random.split(jax.random.key(seed), 4)
        x, y = jl.data.xor(k_train, n_train, noise=0.3)
        xt, yt = jl.data.xor(k_test, n_test, noise=0.3)
        lin = jl.linear.fit_logistic_regression(k_lin, x, y, n_classes=2, l2=1e-4)
        linear_acc.append(float(jnp.mean(jl.linear.predict(lin, xt) == yt)))
        model, params = _train_mlp(k_mlp, x, y, hidden, steps)
        mlp_acc.append(jl.evaluate(model.apply, params, xt, yt)["accuracy"])
        if progress:
            progress(seed + 1, seeds + 1)

    # The exact truth table: every linear model misses a corner; the MLP gets all four.
    xs, ys = jl.data.xor_table()
    xs = 2.0 * xs - 1.0  # {0, 1} -> {-1, +1}, the corners the models were trained on
    table_acc = jl.evaluate(model.apply, params, xs, ys)["accuracy"]

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    _boundary(axes[0], lambda g: jl.linear.predict(lin, g), xt, yt,
              f"logistic regression: acc {linear_acc[-1]:.2f}")
    _boundary(axes[1], lambda g: jnp.argmax(model.apply(params, g), -1), xt, yt,
              f"MLP, {hidden} tanh units: acc {mlp_acc[-1]:.2f}")
    hidden_layer = params[0]
    h = np.asarray(jnp.tanh(xt @ hidden_layer[0]["w"] + hidden_layer[0]["b"]))
    centred = h - h.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    for label, color in ((0, "#08519c"), (1, "#a63603")):
        sel = np.asarray(yt) == label
        axes[2].scatter(proj[sel, 0], proj[sel, 1], s=6, c=color, label=f"class {label}")
    axes[2].set(title="hidden representation (top-2 PCs)", xlabel="PC 1", ylabel="PC 2")
    axes[2].legend(fontsize=7)
    fig.suptitle("XOR: a line cannot separate it, one hidden layer can")
    if progress:
        progress(seeds + 1, seeds + 1)

    rows = [("logistic regression", fmt_mean_sd(linear_acc)),
            (f"MLP (1 hidden layer, {hidden} tanh)", fmt_mean_sd(mlp_acc))]
    return Outcome(
        name="xor", claim=CLAIM,
        checks=[Check("linear model test accuracy (max over seeds)", max(linear_acc), "<=", 0.75),
                Check("MLP test accuracy (min over seeds)", min(mlp_acc), ">=", 0.99),
                Check("MLP accuracy on the 4-point truth table", table_acc, ">=", 1.0)],
        numbers={"linear_accuracy": linear_acc, "mlp_accuracy": mlp_acc,
                 "truth_table_accuracy": table_acc, "n_train": n_train, "n_test": n_test,
                 "noise": 0.3, "seeds": seeds},
        figures={"boundaries": fig},
        tables={f"Test accuracy, mean +- sd over {seeds} seeds":
                markdown_table(("model", "test accuracy"), rows)},
        notes=("Test points carry the label of the corner that generated them (noise 0.3), so "
               "a few points near the axes are ambiguous even for the Bayes classifier."))
