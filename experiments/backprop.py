"""Backpropagation: the chain rule by hand equals autodiff, and both equal finite differences.

These are code-correctness checks of the hand-written backward pass (labelled so in each check's
source), not an empirical claim about learning. Each seed draws its own random problem
(params, inputs, targets); each check is over seeds (Student t 95% interval of the mean of the
per-seed worst error over parameters and configurations): hand vs jax.grad in float64 < 1e-6
(CLAIM's tolerance) and in float32 < 1e-4 (round-off, eps 1.2e-7, with a 1000x margin); central
differences vs jax.grad in float64 at h = 1e-5 < 1e-7 and in float32 at h = 1e-2 < 1e-2 (theory:
truncation ~h^2 plus round-off ~eps / h, with a margin), for sigmoid and tanh (ReLU's kink breaks
finite differences, not backprop: with 10 seeds one float64 ReLU problem had a pre-activation
within h of 0); the log-log slope of the FD error in h
within 2 +- 0.2 (theory: O(h^2); the margin is stated). Seeds: quick 3, full 10 (the only
difference between the modes; each a few seconds of compute, one jax.vmap over seeds)."""

from __future__ import annotations

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn.report import Check, Outcome, markdown_table

CLAIM = ("The chain rule written by hand (G_o = dL/d out, G_2 = h^T G_o, G_1 = G_o W2^T * act') "
         "gives the gradient of a one-hidden-layer MLP: it matches jax.grad to 1e-6 relative error "
         "in float64 and central finite differences to their O(h^2) truncation error.")

ACTIVATIONS = jl.backprop.MLP1_ACTIVATIONS
LOSSES = jl.backprop.MLP1_LOSSES
PARAMS = ("w1", "b1", "w2", "b2")
N_IN, N_HIDDEN, N_OUT, BATCH = 5, 8, 3, 16
# Central differences: error ~ (h^2 / 6) |f'''| + eps |f| / h, smallest near h ~ eps^(1/3).
FD_STEP = {"float64": 1e-5, "float32": 1e-2}
QUICK_FULL_SEEDS = (3, 10)


def _rel_err_per_seed(approx, exact) -> dict[str, np.ndarray]:
    """Per parameter and seed: ``max |approx - exact| / max |exact|`` (relative to the gradient's
    scale, so tiny entries do not blow it up), for gradients stacked over seeds:
    ``{param: [seeds]}``."""
    return {k: np.asarray(v) for k, v in jax.vmap(lambda a, e: {
        k: jnp.max(jnp.abs(a[k] - e[k])) / jnp.max(jnp.abs(e[k])) for k in PARAMS})(
        approx, exact).items()}


def _cast(a, dtype):
    """Float arrays to ``dtype``; integer labels unchanged."""
    return jnp.asarray(a, dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a


def _problem(seed: int, loss: str):
    """float32 params, inputs and targets for one seed (cast up for float64 runs)."""
    k_init, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    params = jl.backprop.mlp1_init(k_init, N_IN, N_HIDDEN, N_OUT)
    x = jax.random.normal(k_x, (BATCH, N_IN), jnp.float32)
    if loss == "mse":
        y = jax.random.normal(k_y, (BATCH, N_OUT), jnp.float32)
    else:
        y = jax.random.randint(k_y, (BATCH,), 0, N_OUT, jnp.int32)
    return params, x, y


@functools.partial(jax.jit, static_argnames=("activation", "loss"))
def _gradients(params, x, y, steps, *, activation, loss):
    """Hand-written, autodiff and central-difference gradients (one per step in ``steps``)."""
    _, cache = jl.backprop.mlp1_forward(params, x, activation=activation)
    hand = jl.backprop.mlp1_backward(params, cache, y, activation=activation, loss=loss)
    objective = functools.partial(jl.backprop.mlp1_loss, x=x, y=y, activation=activation,
                                  loss=loss)
    auto = jax.grad(objective)(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    eye = jnp.eye(flat.size, dtype=flat.dtype)
    value = jax.vmap(lambda theta: objective(unravel(theta)))

    def central(h):
        rows = jnp.broadcast_to(flat, eye.shape)          # one perturbed copy per parameter
        return unravel((value(rows + h * eye) - value(rows - h * eye)) / (2 * h))

    return hand, auto, jax.vmap(central)(steps)


def _run_dtype(dtype_name, seed_values):
    """Errors for every activation x loss in one dtype, per seed: ``hand_vs_grad`` and
    ``fd_vs_grad`` ``{param: [seeds]}``, ``fd_curve`` ``[seeds, len(sweep)]`` (the FD error vs
    h). The seeds' problems are stacked and their gradients computed in one ``jax.vmap``."""
    dtype = jnp.float64 if dtype_name == "float64" else jnp.float32
    sweep = np.logspace(-1, -9, 17) if dtype_name == "float64" else np.logspace(-0.5, -5, 10)
    steps = jnp.asarray(np.concatenate([[FD_STEP[dtype_name]], sweep]), dtype)
    results = {}
    for activation in ACTIVATIONS:
        for loss in LOSSES:
            problems = [jax.tree.map(functools.partial(_cast, dtype=dtype),
                                               _problem(seed, loss)) for seed in seed_values]
            params, x, y = jax.tree.map(lambda *a: jnp.stack(a), *problems)
            gradients = functools.partial(_gradients, activation=activation, loss=loss)
            hand, auto, fds = jax.vmap(gradients, in_axes=(0, 0, 0, None))(params, x, y, steps)
            flat_auto = jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0])(auto)
            flat_fd = jax.vmap(jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0]))(fds)
            curve = (jnp.max(jnp.abs(flat_fd[:, 1:] - flat_auto[:, None, :]), axis=-1)
                     / jnp.max(jnp.abs(flat_auto), axis=-1, keepdims=True))
            fd_first = jax.tree.map(lambda a: a[:, 0], fds)
            results[(activation, loss)] = {
                "hand_vs_grad": _rel_err_per_seed(hand, auto),
                "fd_vs_grad": _rel_err_per_seed(fd_first, auto),
                "fd_curve": np.asarray(curve)}
    return results, sweep


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=QUICK_FULL_SEEDS)
    seeds = len(seed_values)
    with jax.enable_x64(True):
        res64, sweep64 = _run_dtype("float64", seed_values)
    if progress:
        progress(1, 3)
    res32, sweep32 = _run_dtype("float32", seed_values)
    if progress:
        progress(2, 3)
    results = {"float64": res64, "float32": res32}
    sweeps = {"float64": sweep64, "float32": sweep32}

    def worst(dtype, kind, smooth_only=False):
        """Per seed ``[seeds]``: the largest error over parameters and configurations."""
        return np.max([np.max(np.stack(list(r[kind].values())), axis=0)
                       for (activation, _), r in results[dtype].items()
                       if not (smooth_only and activation == "relu")], axis=0)

    # Truncation regime of the float64 sweep: h in [1e-2, 1e-4], where error ~ C h^2; one
    # slope per seed and configuration.
    sel = (sweep64 <= 1.01e-2) & (sweep64 >= 0.99e-4)
    slopes = {f"{activation}/{loss}": np.array([
        np.polyfit(np.log10(sweep64[sel]), np.log10(c[sel]), 1)[0] for c in r["fd_curve"]])
        for (activation, loss), r in res64.items()}
    smooth = np.stack([v for k, v in slopes.items() if not k.startswith("relu")])  # [cfg, seeds]
    code_test = "code-correctness test of the hand-written backward pass, not a learning claim; "
    checks = [
        Check.sample("float64: relative error hand vs jax.grad (per seed: max over params and "
                     "configs)", worst("float64", "hand_vs_grad"), "<", 1e-6,
                     source=code_test + "1e-6 is CLAIM's tolerance (float64 round-off ~1e-16)"),
        Check.sample("float32: relative error hand vs jax.grad (per seed: max)",
                     worst("float32", "hand_vs_grad"), "<", 1e-4,
                     source=code_test + "theory: float32 round-off (eps 1.2e-7), 1000x margin"),
        Check.sample(f"float64, sigmoid/tanh: relative error central FD "
                     f"(h={FD_STEP['float64']:g}) vs jax.grad (per seed: max)",
                     worst("float64", "fd_vs_grad", smooth_only=True), "<", 1e-7,
                     source=code_test + "theory: truncation ~h^2 = 1e-10 plus round-off "
                                        "eps / h ~ 1e-11, 100x margin"),
        Check.sample(f"float32, sigmoid/tanh: relative error central FD "
                     f"(h={FD_STEP['float32']:g}) vs jax.grad (per seed: max)",
                     worst("float32", "fd_vs_grad", smooth_only=True), "<", 1e-2,
                     source=code_test + "theory: round-off eps / h ~ 1e-5 plus truncation "
                                        "~h^2 = 1e-4, 20x margin"),
        Check.sample("float64 FD error vs h, log-log slope for h in [1e-4, 1e-2], sigmoid/tanh "
                     "(per seed: mean over configs)", smooth.mean(0), ">=", 1.8,
                     source="theory: central differences have O(h^2) truncation error (slope "
                            "2); +-0.2 a stated margin for a fit over two decades"),
        Check.sample("float64 FD error vs h, slope (upper side)", smooth.mean(0), "<=", 2.2,
                     source="theory: O(h^2), slope 2; +-0.2 a stated margin"),
    ]

    rows = []
    for dtype in ("float64", "float32"):
        for (activation, loss), r in results[dtype].items():
            rows.append((dtype, activation, loss,
                         *(float(r["hand_vs_grad"][k].max()) for k in PARAMS),
                         *(float(r["fd_vs_grad"][k].max()) for k in PARAMS)))
    header = ("dtype", "activation", "loss", *(f"hand {k}" for k in PARAMS),
              *(f"FD {k}" for k in PARAMS))
    kinds = ("hand_vs_grad", "fd_vs_grad")
    numbers = {
        "seeds": seeds, "seed_values": list(seed_values),
        "shapes": {"batch": BATCH, "n_in": N_IN, "n_hidden": N_HIDDEN, "n_out": N_OUT},
        "fd_step": FD_STEP,
        "errors": {dtype: {f"{a}/{lo}": {kind: {k: float(v.max()) for k, v in r[kind].items()}
                                         for kind in kinds}
                           for (a, lo), r in results[dtype].items()} for dtype in results},
        "errors_per_seed": {dtype: {f"{a}/{lo}": {kind: {k: v.tolist()
                                                         for k, v in r[kind].items()}
                                                  for kind in kinds}
                                    for (a, lo), r in results[dtype].items()}
                            for dtype in results},
        "fd_sweep": {dtype: {"h": sweeps[dtype].tolist(),
                             **{f"{a}/{lo}": r["fd_curve"].max(0).tolist()
                                for (a, lo), r in results[dtype].items()}} for dtype in results},
        "fd_slope_float64": {k: float(v.mean()) for k, v in slopes.items()},
        "fd_slope_float64_per_seed": {k: v.tolist() for k, v in slopes.items()},
    }
    fig = _figure(results, sweeps)
    if progress:
        progress(3, 3)
    return Outcome(
        name="backprop", claim=CLAIM, checks=checks, numbers=numbers, figures={"errors": fig},
        tables={f"Max relative error vs jax.grad, max over {seeds} seeds (hand: chain rule by "
                "hand; FD: central differences at h = 1e-5 in float64, 1e-2 in float32)":
                markdown_table(header, rows)},
        notes=("Relative error of a parameter array = max |g - g_ref| / max |g_ref|. MLP "
               f"{N_IN}-{N_HIDDEN}-{N_OUT}, batch {BATCH}, Glorot init, x ~ N(0, 1); MSE targets "
               "~ N(0, 1), cross-entropy with integer labels; each seed draws its own params, "
               "inputs and targets. These checks test the code (the hand-written backward pass "
               "against autodiff and finite differences), not an empirical claim about "
               "learning; each takes, per seed, the worst error over parameters and "
               "configurations. Quick and full mode differ only in the number of seeds "
               f"({QUICK_FULL_SEEDS[0]} and {QUICK_FULL_SEEDS[1]}). Hand and jax.grad agree to "
               "a few units of machine epsilon; finite differences are limited by truncation "
               "(~h^2, slope 2 on the log-log plot) for large h and by round-off (~eps / h) for "
               "small h. ReLU is piecewise linear: when a pre-activation lies within about h |x| "
               "of 0, the two evaluations of the central difference straddle the kink and the FD "
               "'gradient' is off by O(1) (float32, h = 1e-2 in the table); that is a limit of "
               "finite differences, not of backprop, so the FD checks cover sigmoid and tanh "
               "only (in float64, h = 1e-5, it happens on rare seeds: seed 6 of 0-9, ReLU/MSE, "
               "5e-2)."))


def _figure(results, sweeps):
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_h, ax_bar = fig.subplots(1, 2)
    styles = {"float64": "-", "float32": "--"}
    colors = {"sigmoid": "#1b9e77", "tanh": "#7570b3", "relu": "#d95f02"}
    for dtype in ("float64", "float32"):
        for activation in ACTIVATIONS:
            curve = results[dtype][(activation, "softmax_cross_entropy")]["fd_curve"].max(0)
            ax_h.plot(sweeps[dtype], curve, styles[dtype], color=colors[activation], marker=".",
                      label=f"{activation}, {dtype}")
    h = sweeps["float64"]
    ref = results["float64"][("tanh", "softmax_cross_entropy")]["fd_curve"].max(0)
    i = int(np.argmin(np.abs(h - 1e-2)))
    ax_h.plot(h, 0.1 * ref[i] * (h / h[i]) ** 2, ":", color="black",
              label="slope 2: truncation ~ h^2")
    ax_h.plot(h, 1.1e-16 / h, "-.", color="black", label="slope -1: round-off ~ eps64 / h")
    ax_h.set(xscale="log", yscale="log", xlabel="finite-difference step h",
             ylabel="max relative error vs jax.grad", ylim=(1e-12, 10),
             title="Central differences: truncation vs round-off (cross-entropy)")
    ax_h.grid(True, which="major", alpha=0.3)
    ax_h.legend(fontsize=7, ncol=2, loc="upper center")

    labels, x_pos = [], np.arange(len(ACTIVATIONS) * len(LOSSES))
    floor = 1e-18
    for j, dtype in enumerate(("float64", "float32")):
        values = np.array([max(float(v.max()) for v in r["hand_vs_grad"].values())
                           for r in results[dtype].values()])
        labels = [f"{a}\n{'CE' if lo != 'mse' else 'MSE'}" for a, lo in results[dtype]]
        where = x_pos + (j - 0.5) * 0.38
        ax_bar.bar(where, np.maximum(values, floor), width=0.38,
                   label=f"hand vs jax.grad, {dtype}")
        for xb, v in zip(where, values):
            if v == 0:
                ax_bar.text(xb, floor * 2, "0", ha="center", va="bottom", fontsize=8)
    ax_bar.axhline(1e-6, color="black", ls="--", lw=1, label="float64 tolerance 1e-6")
    ax_bar.axhline(float(np.finfo(np.float32).eps), color="gray", ls=":", lw=1,
                   label="float32 eps")
    ax_bar.axhline(float(np.finfo(np.float64).eps), color="gray", ls="-.", lw=1,
                   label="float64 eps")
    ax_bar.set_xticks(x_pos, labels, fontsize=8)
    ax_bar.set(yscale="log", ylabel="max relative error over w1, b1, w2, b2", ylim=(floor, 1e-1),
               title="Chain rule by hand vs jax.grad (0 = bitwise equal)")
    ax_bar.legend(fontsize=7, ncol=2, loc="upper center")
    fig.suptitle("Backpropagation checked two ways")
    return fig
