"""Dropout: an unbiased random mask at train time, a smaller train/test gap on few data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Inverted dropout is unbiased (averaged over masks it returns its input), and on a small "
         "training set it shrinks the gap between training and test accuracy of an "
         "over-parameterised MLP and raises its test accuracy.")

RATES = (0.1, 0.5, 0.9)
MODELS = ("no dropout", "dropout")
CE = "softmax_cross_entropy_with_integer_labels"


def _unbiasedness(key, rate, n_masks, n_units):
    """Mean of ``n_masks`` dropout draws of one input ``x`` ``[n_units]`` and its z-scores.

    Each output unit is ``x_j m / (1 - rate)``, ``m ~ Bernoulli(1 - rate)``: mean ``x_j``, sd
    ``|x_j| sqrt(rate / (1 - rate))``, so the mean over masks has standard error
    ``|x_j| sqrt(rate / (1 - rate)) / sqrt(n_masks)``.
    """
    k_x, k_masks = jax.random.split(key)
    x = jax.random.normal(k_x, (1, n_units))
    layer = jl.nn.dropout(rate)
    draws = jax.vmap(lambda k: layer.apply((), x, key=k, train=True)[0])(
        jax.random.split(k_masks, n_masks))                                   # [n_masks, n_units]
    mean = jnp.mean(draws, axis=0)
    se = jnp.abs(x[0]) * np.sqrt(rate / (1.0 - rate)) / np.sqrt(n_masks)
    z = (mean - x[0]) / se
    kept = float(jnp.mean(draws != 0))
    identity = bool(jnp.array_equal(layer.apply((), x, key=k_masks, train=False), x))
    running = jnp.cumsum(draws[:, :3], axis=0) / jnp.arange(1, n_masks + 1)[:, None]
    return np.asarray(z), kept, identity, np.asarray(running), np.asarray(x[0, :3])


def _ensemble(width, rate, seeds):
    """Both MLPs (without / with dropout) for every seed, as one model: params
    ``{name: stacked over seeds}``, outputs ``[2, seeds, batch, 10]``. Each network draws its own
    dropout masks (the step's key is split per network)."""
    models = {"no dropout": jl.nn.mlp((width, width), 10),
              "dropout": jl.nn.mlp((width, width), 10, dropout=rate)}
    keys = jnp.stack([jax.random.key(seed) for seed in range(seeds)])
    params = {name: jax.vmap(lambda k, m=m: m.init(k, (40,))[1])(keys)
              for name, m in models.items()}

    def apply(params, x, *, key=None, train=False):
        outs = []
        for i, name in enumerate(MODELS):
            model = models[name]
            if key is None:
                out = jax.vmap(lambda p, m=model: m.apply(p, x, train=train))(params[name])
            else:
                ks = jax.random.split(jax.random.fold_in(key, i), seeds)
                out = jax.vmap(lambda p, k, m=model: m.apply(p, x, key=k, train=train))(
                    params[name], ks)
            outs.append(out)
        return jnp.stack(outs)

    def loss(out, y):
        """Sum over the 2 x seeds independent networks of their cross-entropies: ``[batch]``.
        Each network gets exactly its own gradient, so training them together is training
        each alone (on the same sequence of mini-batches)."""
        per_net = jax.vmap(jax.vmap(
            lambda logits: jl.losses.softmax_cross_entropy_with_integer_labels(logits, y)))(out)
        return jnp.sum(per_net, axis=(0, 1))

    return apply, params, loss


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    n_train, width, rate = 500, 256, 0.5
    epochs = 80 if quick else 150
    eval_every = 4 if quick else 5
    learning_rate, batch_size = 2e-3, 50
    n_masks = 4000 if quick else 20000
    total = epochs // eval_every + 2

    # 1. Unbiasedness, for several rates.
    unbiased = {}
    for i, r in enumerate(RATES):
        unbiased[r] = _unbiasedness(jax.random.key(100 + i), r, n_masks, 1000)
    if progress:
        progress(1, total)

    # 2. Train/test gap on 500 MNIST-1D signals.
    data = jl.data.load_mnist1d()
    x, y = data.x_train[:n_train], data.y_train[:n_train]
    x_test, y_test = data.x_test, data.y_test
    apply, params, loss = _ensemble(width, rate, seeds)

    @jax.jit
    def scores(params):
        """Accuracy ``[2, seeds]`` on the training and test sets (test mode) and test CE."""
        def acc(xs, ys):
            predicted = jnp.argmax(apply(params, xs), axis=-1)          # [..., n]
            return jnp.mean(predicted == jnp.broadcast_to(ys, predicted.shape), axis=-1)
        test_out = apply(params, x_test)
        test_ce = jnp.mean(jax.vmap(jax.vmap(
            lambda o: jl.losses.softmax_cross_entropy_with_integer_labels(o, y_test)))(
            test_out), axis=-1)
        return acc(x, y), acc(x_test, y_test), test_ce

    curves = {"epoch": [], "train": [], "test": []}

    def record(epoch, logs, p):
        if (epoch + 1) % eval_every == 0:
            train_acc, test_acc, _ = scores(p)
            curves["epoch"].append(epoch + 1)
            curves["train"].append(np.asarray(train_acc))
            curves["test"].append(np.asarray(test_acc))
            if progress:
                progress(1 + len(curves["epoch"]), total)

    result = jl.fit(apply, params, x, y, loss=loss, optimizer=optax.adam(learning_rate),
                    key=jax.random.key(1), batch_size=batch_size, epochs=epochs,
                    callbacks=[record])
    train_acc, test_acc, test_ce = (np.asarray(a) for a in scores(result.params))  # [2, seeds]
    gap = train_acc - test_acc
    gap_reduction = gap[0] - gap[1]
    test_gain = test_acc[1] - test_acc[0]
    if progress:
        progress(total, total)

    z_all = np.concatenate([unbiased[r][0] for r in RATES])
    checks = [
        Check(f"max |z| of the mean over {n_masks} masks vs the input ({len(z_all)} units, "
              f"rates {RATES})", float(np.max(np.abs(z_all))), "<", 5.0),
        Check("mean z^2 (1 if the standard errors are right)", float(np.mean(z_all ** 2)),
              "<", 1.2),
        Check("mean z^2, lower side", float(np.mean(z_all ** 2)), ">", 0.8),
        Check("max |kept fraction - (1 - rate)|",
              max(abs(unbiased[r][1] - (1 - r)) for r in RATES), "<", 0.01),
        Check("test mode is the identity (1 = yes)",
              float(all(unbiased[r][2] for r in RATES)), ">=", 1.0),
        Check("train-test accuracy gap: no dropout minus dropout (mean over seeds)",
              float(gap_reduction.mean()), ">=", 0.02),
        Check("test accuracy: dropout minus no dropout (mean over seeds)",
              float(test_gain.mean()), ">=", 0.01),
        Check("test cross-entropy: dropout / no dropout (mean over seeds)",
              float(test_ce[1].mean() / test_ce[0].mean()), "<", 0.8),
    ]
    rows = [(name, fmt_mean_sd(train_acc[i]), fmt_mean_sd(test_acc[i]), fmt_mean_sd(gap[i]),
             fmt_mean_sd(test_ce[i])) for i, name in enumerate(MODELS)]
    unb_rows = [(r, f"{unbiased[r][1]:.4f}", float(np.max(np.abs(unbiased[r][0]))),
                 float(np.mean(unbiased[r][0] ** 2))) for r in RATES]
    numbers = {
        "seeds": seeds, "n_train": n_train, "n_test": int(len(y_test)), "width": width,
        "rate": rate, "epochs": epochs, "learning_rate": learning_rate,
        "batch_size": batch_size,
        "train_accuracy": dict(zip(MODELS, train_acc.tolist())),
        "test_accuracy": dict(zip(MODELS, test_acc.tolist())),
        "gap": dict(zip(MODELS, gap.tolist())), "test_cross_entropy": dict(zip(MODELS,
                                                                            test_ce.tolist())),
        "gap_reduction": gap_reduction.tolist(), "test_gain": test_gain.tolist(),
        "unbiasedness": {str(r): {"n_masks": n_masks, "kept_fraction": unbiased[r][1],
                                  "max_abs_z": float(np.max(np.abs(unbiased[r][0]))),
                                  "mean_z2": float(np.mean(unbiased[r][0] ** 2))}
                         for r in RATES},
        "curves": {"epoch": curves["epoch"],
                   "train": {name: [c[i].tolist() for c in curves["train"]]
                             for i, name in enumerate(MODELS)},
                   "test": {name: [c[i].tolist() for c in curves["test"]]
                            for i, name in enumerate(MODELS)}},
        "compile_time": result.compile_time, "train_time": result.train_time,
    }
    return Outcome(
        name="dropout", claim=CLAIM, checks=checks, numbers=numbers,
        figures={"curves": _curves_figure(curves, rate, n_train),
                 "unbiased": _unbiased_figure(unbiased, n_masks)},
        tables={f"{n_train} MNIST-1D training signals, MLP 40-{width}-{width}-10, after {epochs} "
                f"epochs; mean +- sd over {seeds} seeds":
                markdown_table(("model", "train accuracy", "test accuracy", "gap",
                                "test cross-entropy"), rows),
                "Dropout averaged over masks (1000 units, x ~ N(0, 1))":
                markdown_table(("rate", "kept fraction", "max |z|", "mean z^2"), unb_rows)},
        notes=(f"Training: the first {n_train} signals of the MNIST-1D training split, Adam "
               f"({learning_rate}), batch {batch_size}; accuracy in test mode (no dropout) on "
               f"those {n_train} and on the {len(y_test)} test signals, every {eval_every} epochs "
               f"by a callback. Dropout rate {rate} after each hidden layer. All 2 x {seeds} "
               "networks train in one jl.fit call (the loss is the sum of their losses, so each "
               "gets its own gradient; they share the mini-batch order). z-score of a unit = "
               "(mean over masks - x_j) / standard error, ~ N(0, 1) if dropout is unbiased."))


def _curves_figure(curves, rate, n_train):
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.subplots()
    epochs = np.asarray(curves["epoch"])
    colors = {"no dropout": "#d95f02", "dropout": "#1b9e77"}
    for i, name in enumerate(MODELS):
        label = name if name == "no dropout" else f"dropout {rate}"
        for split, style in (("train", "-"), ("test", "--")):
            values = np.stack([c[i] for c in curves[split]])                   # [n_eval, seeds]
            mean = values.mean(1)
            ax.plot(epochs, mean, style, color=colors[name], label=f"{label}: {split}")
            if values.shape[1] > 1:
                sd = values.std(1, ddof=1)
                ax.fill_between(epochs, mean - sd, mean + sd, color=colors[name], alpha=0.15)
    ax.set(xlabel="epoch", ylabel="accuracy (test mode)", ylim=(0, 1.02),
           title=f"MNIST-1D, {n_train} training signals: train (solid) vs test (dashed), "
                 "mean +- sd over seeds")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    return fig


def _unbiased_figure(unbiased, n_masks):
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_run, ax_z = fig.subplots(1, 2)
    running, x3 = unbiased[0.5][3], unbiased[0.5][4]
    k = np.arange(1, n_masks + 1)
    for j in range(running.shape[1]):
        line, = ax_run.plot(k, running[:, j], lw=1, label=f"unit {j}: x = {x3[j]:.2f}")
        ax_run.axhline(x3[j], color=line.get_color(), ls=":", lw=1)
    ax_run.set(xscale="log", xlabel="number of masks averaged",
               ylabel="running mean of dropout(x)_j",
               title="Rate 0.5: the average over masks converges to x")
    ax_run.legend(fontsize=8)
    grid = np.linspace(-4.5, 4.5, 200)
    for r in RATES:
        ax_z.hist(unbiased[r][0], bins=40, range=(-4.5, 4.5), density=True, histtype="step",
                  lw=1.5, label=f"rate {r}")
    ax_z.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), color="black", ls="--",
              label="N(0, 1)")
    ax_z.set(xlabel="z = (mean over masks - x) / standard error", ylabel="density",
             title=f"z-scores of 1000 units, {n_masks} masks each")
    ax_z.legend(fontsize=8)
    fig.suptitle("Inverted dropout is unbiased: E[mask * x / (1 - rate)] = x")
    return fig
