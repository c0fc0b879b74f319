"""Universal approximation: one hidden layer, growing width, a continuous target on [-1, 1].

Checks, all over seeds (each seed its own inits; Student t 95% intervals of the mean, per-seed
values roughly symmetric), three per activation:

- sup error at the widest / at width 1 < 0.1: CLAIM's "more than 10-fold" (width 1 cannot
  follow sin(pi x), its error is ~1, so this asks for ~0.1 at the widest);
- sup error at the widest < 0.05: "as well as we like", at a stated tolerance of 2.5% of the
  target's range on [-1, 1] (~2);
- log10 of the sup error at the widest over that at a quarter of the widest < 0 (paired over
  seeds): "as well as we like once wide enough" means more width keeps lowering the error. This
  replaces the Spearman threshold -0.6, which had been set after measuring; the per-seed
  Spearman correlations stay in the numbers. In full mode tanh's error rises from width 32 to
  128 (the optimiser's floor, not the theorem): a finding, reported in the notes.

Seeds: quick 3 (widths to 64, 2000 steps), full 8 (widths to 128, 4000 steps; about 4-5 min on
the shared 2-core CPU, all networks in one jl.fit call)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("A network with one hidden layer approximates a continuous function on a compact interval "
         "as well as we like once it is wide enough: its sup-norm error falls more than 10-fold "
         "from 1 hidden unit to the widest network, for sigmoid, tanh and ReLU alike.")

ACTIVATIONS = ("sigmoid", "tanh", "relu")
COLORS = {"sigmoid": "#1b9e77", "tanh": "#7570b3", "relu": "#d95f02"}
LOW, HIGH = -1.0, 1.0
TOLERANCE = 0.05      # "as well as we like": 2.5% of the target's range on [-1, 1]
QUICK_FULL_SEEDS = (3, 8)


def _target(x):
    """``f(x) = sin(pi x) + x^2 / 2``: continuous, not odd, one full period on [-1, 1]."""
    return jnp.sin(jnp.pi * x) + 0.5 * x ** 2


def _model(activation, width):
    return jl.nn.mlp((width,), 1, activation=activation, w_init="torch")


def _init_bank(widths, seed_values):
    """The starting params of all ``len(widths) * len(seed_values)`` networks, as
    width-``max(widths)`` networks stacked on a leading axis ``[n_models]`` (width-major), and
    their masks.

    A width-``w`` network is the widest one with hidden units ``w..`` masked to zero: ``apply``
    multiplies the params by the mask, so masked units output nothing and get a zero gradient
    (Adam then leaves them at zero). With the PyTorch init the hidden layer (fan-in 1) is
    ``U(-1, 1)`` whatever the width, and the output layer ``U(-1/sqrt(w), 1/sqrt(w))``: the
    widest network's output layer is rescaled by ``sqrt(max(widths) / w)`` to match. Network
    ``(width i, seed s)`` draws from ``fold_in(key(s), i)``, ``s`` in ``seed_values``. The init
    does not depend on the activation, so every activation starts from the same networks.
    """
    w_max, seeds = max(widths), len(seed_values)
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), i)
                      for i in range(len(widths)) for s in seed_values])
    params = jax.vmap(lambda k: _model("tanh", w_max).init(k, (1,))[1])(keys)
    units = jnp.repeat(jnp.asarray(widths, jnp.float32), seeds)                   # [n_models]
    unit_mask = (jnp.arange(w_max)[None, :] < units[:, None]).astype(jnp.float32)  # [n, w_max]
    masks = (({"w": unit_mask[:, None, :], "b": unit_mask}, ()),
             {"w": unit_mask[:, :, None], "b": jnp.ones((units.shape[0], 1), jnp.float32)})
    scale = jnp.sqrt(w_max / units)
    (hidden, _), out = params
    params = (({"w": hidden["w"], "b": hidden["b"]}, ()),
              {"w": out["w"] * scale[:, None, None], "b": out["b"] * scale[:, None]})
    params = jax.tree.map(jnp.multiply, params, masks)
    return params, masks


def _spearman(a, b):
    """Spearman rank correlation (no ties): the Pearson correlation of the ranks."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _optimizer(learning_rate, steps):
    """Adam with a cosine decay of the step to 1% of ``learning_rate``: the late small steps
    settle the fit instead of rattling around the minimum."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01))


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=QUICK_FULL_SEEDS)
    seeds = len(seed_values)
    widths = (1, 2, 4, 8, 16, 32, 64) if quick else (1, 2, 4, 8, 16, 32, 64, 128)
    steps = 2000 if quick else 4000
    n_train, n_grid, learning_rate = 128, 2001, 0.02
    steps_per_epoch = 100

    key = jax.random.key(0)
    # Noise-free samples on a uniform grid that includes both ends: the sup norm then measures
    # approximation between samples, not extrapolation beyond the outermost random point.
    x = jnp.linspace(LOW, HIGH, n_train, dtype=jnp.float32)[:, None]
    y = _target(x[:, 0])
    grid = jnp.linspace(LOW, HIGH, n_grid, dtype=jnp.float32)[:, None]
    f_grid = _target(grid[:, 0])

    models = {a: _model(a, max(widths)) for a in ACTIVATIONS}
    init_params, masks = _init_bank(widths, seed_values)

    def apply(params, xb):
        """``xb`` ``[1, n, 1]`` (the whole set as one example) -> ``[1, n_models, n]``."""
        outs = [jax.vmap(lambda p, m, a=a: models[a].apply(
                    jax.tree.map(jnp.multiply, p, m), xb[0])[:, 0])(params[a], masks)
                for a in ACTIVATIONS]
        return jnp.concatenate(outs, axis=0)[None]

    def loss(out, yb):
        # Sum over the independent networks of each one's mean squared error: every network gets
        # exactly the gradient of its own MSE, so training them together is training each alone.
        return jnp.sum(jl.losses.mse(out, jnp.broadcast_to(yb[:, None, :], out.shape)), axis=-1)

    # Full-batch training through jl.fit, which draws batches of *examples*: the whole training
    # set is presented as one example, repeated steps_per_epoch times, with batch_size=1, so every
    # step is an exact full-batch Adam step and an epoch is steps_per_epoch of them.
    xs = jnp.broadcast_to(x[None], (steps_per_epoch, n_train, 1))
    ys = jnp.broadcast_to(y[None], (steps_per_epoch, n_train))
    n_epochs = steps // steps_per_epoch

    def report(epoch, logs, params):
        if progress:
            progress(epoch + 1, n_epochs + 1)

    result = jl.fit(apply, {a: init_params for a in ACTIVATIONS}, xs, ys, loss=loss,
                    optimizer=_optimizer(learning_rate, steps), key=key,
                    batch_size=1, steps=steps, callbacks=[report])

    shape = (len(ACTIVATIONS), len(widths), seeds)
    predict = jax.jit(apply)
    fits = np.asarray(predict(result.params, grid[None])[0]).reshape(*shape, n_grid)
    sup = np.max(np.abs(fits - np.asarray(f_grid)), axis=-1)              # [act, width, seed]
    train_mse = np.mean((np.asarray(predict(result.params, x[None])[0]).reshape(*shape, n_train)
                         - np.asarray(y)) ** 2, axis=-1)
    ratio = sup[:, -1] / sup[:, 0]                                         # [act, seed]
    quarter = widths.index(widths[-1] // 4)
    log_top = np.log10(sup[:, -1] / sup[:, quarter])                       # [act, seed]
    # Per seed: Spearman rank correlation of width and error (-1 = strictly decreasing).
    spearman = np.array([[_spearman(np.asarray(widths, float), sup[i, :, s])
                          for s in range(seeds)] for i in range(len(ACTIVATIONS))])
    if progress:
        progress(n_epochs + 1, n_epochs + 1)

    checks = []
    for i, a in enumerate(ACTIVATIONS):
        checks += [
            Check.sample(f"{a}: sup error, width {widths[-1]} / width 1 (per seed)", ratio[i], "<",
                         0.1, source="CLAIM: falls more than 10-fold from 1 unit to the widest"),
            Check.sample(f"{a}: sup error at width {widths[-1]}", sup[i, -1], "<", TOLERANCE,
                         source=f"CLAIM 'as well as we like', at a stated tolerance: {TOLERANCE:g}"
                                " = 2.5% of the target's range on [-1, 1] (~2)"),
            Check.sample(f"{a}: log10 sup error, width {widths[-1]} over width "
                         f"{widths[quarter]} (paired over seeds)", log_top[i], "<", 0.0,
                         source="CLAIM 'as well as we like once wide enough': more width keeps "
                                "lowering the error at the top of the sweep (threshold 0)"),
        ]

    rows = [(w, *(fmt_mean_sd(sup[i, j], 4) for i in range(len(ACTIVATIONS))))
            for j, w in enumerate(widths)]
    numbers = {
        "widths": list(widths), "activations": list(ACTIVATIONS), "seeds": seeds,
        "seed_values": list(seed_values),
        "n_train": n_train, "n_grid": n_grid, "steps": steps, "learning_rate": learning_rate,
        "sup_error": {a: sup[i].tolist() for i, a in enumerate(ACTIVATIONS)},
        "train_mse": {a: train_mse[i].tolist() for i, a in enumerate(ACTIVATIONS)},
        "ratio_widest_to_width_1": {a: ratio[i].tolist() for i, a in enumerate(ACTIVATIONS)},
        "log10_widest_over_quarter": {a: log_top[i].tolist()
                                      for i, a in enumerate(ACTIVATIONS)},
        "spearman_width_vs_error": {a: spearman[i].tolist() for i, a in enumerate(ACTIVATIONS)},
        "compile_time": result.compile_time, "train_time": result.train_time,
    }
    return Outcome(
        name="universal_approximation", claim=CLAIM, checks=checks, numbers=numbers,
        figures={"fits": _fits_figure(grid, f_grid, fits, widths, n_train),
                 "sup_error": _error_figure(sup, widths)},
        tables={f"Sup-norm error on {n_grid} grid points of [-1, 1], mean +- sd over {seeds} "
                f"seeds": markdown_table(("width", *ACTIVATIONS), rows)},
        notes=(f"Target f(x) = sin(pi x) + x^2/2 sampled without noise at {n_train} points of a "
               f"uniform grid on [-1, 1]; full-batch Adam (learning rate {learning_rate}, cosine "
               f"decay, {steps} steps) on the MSE; PyTorch-style init (biases U(-1, 1) spread "
               "the units over the interval); each seed its own inits. All "
               f"{len(ACTIVATIONS) * len(widths) * seeds} networks train in one jl.fit call: a "
               "width-w network is the widest one with the other units masked to zero, and the "
               "loss is the sum of the networks' MSEs, so each gets exactly its own gradient. "
               "Finding: beyond ~16-32 units the error stops at the optimiser's floor "
               "(~5e-3 to 1e-2): in full mode (8 seeds, two seed offsets) ReLU's error still "
               "falls from 32 to 128 units, sigmoid's stays flat (inconclusive) and tanh's "
               "rises by ~2x (does not hold), "
               f"although a width-{widths[-1]} network contains every narrower one (zero output "
               "weights): the theorem promises that a good network exists, and Adam in a fixed "
               "number of steps does not find a better one as the width grows. So 'as well as we "
               f"like' holds down to the tolerance {TOLERANCE:g}, not below the optimiser's "
               "floor."
               + (f" Quick mode: widths up to {widths[-1]}, {steps} steps, {seeds} seeds."
                  if quick else "")))


def _fits_figure(grid, f_grid, fits, widths, n_train):
    shown = [w for w in (1, 2, 4, 16, widths[-1]) if w in widths]
    colors = dict(zip(shown, ("#fdae61", "#f46d43", "#d73027", "#74add1", "#313695")))
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(ACTIVATIONS), sharey=True)
    g = np.asarray(grid[:, 0])
    for i, (ax, a) in enumerate(zip(axes, ACTIVATIONS)):
        for w in shown:
            ax.plot(g, fits[i, widths.index(w), 0], color=colors[w], lw=1.6, label=f"width {w}")
        ax.plot(g, np.asarray(f_grid), color="black", lw=1.2, ls="--",
                label=f"target f ({n_train} samples)")
        ax.set(title=f"{a}: fits of growing width (first seed)", xlabel="x")
    axes[0].set_ylabel("f(x) and the network's fit")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("One hidden layer: wider networks fit the target more closely")
    return fig


def _error_figure(sup, widths):
    fig = Figure(figsize=(6.5, 4.4), layout="constrained")
    ax = fig.subplots()
    for i, a in enumerate(ACTIVATIONS):
        for s in range(sup.shape[-1]):
            ax.scatter(widths, sup[i, :, s], color=COLORS[a], s=12, alpha=0.35)
        ax.plot(widths, sup[i].mean(-1), marker="o", color=COLORS[a], label=f"{a} (mean)")
    ax.set(xscale="log", yscale="log", xlabel="hidden units (width)",
           ylabel="sup-norm error  max |f - f_net| on the grid",
           title="Sup-norm error vs width (line: mean; dots: each seed)")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig
