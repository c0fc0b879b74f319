"""Gradient descent: where it ends depends on where it starts, and how fast on the learning rate.

The lecture's two costs on ``x > 1/e``: ``J(x) = x^2 / (1 + log x)``, whose only minimiser is
``x* = e^{-1/2}`` with ``J''(x*) = 8``, and the wavy ``J(x) = x^2 sin(pi x) / (1 + log x)`` with
a local minimum in every period. GD ``x_{t+1} = x_t - eta J'(x_t)`` converges near ``x*`` when
``|1 - eta J''(x*)| < 1``, i.e. ``eta < 2/8 = 0.25``: smaller ``eta`` is slower (the error
shrinks by ``1 - 8 eta`` per step), larger ``eta`` overshoots and oscillates, and a very large
step can jump out of the domain.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Gradient descent reaches the minimum its start lies above: on the wavy cost starts in "
         "different valleys end in >= 2 different local minima, while on the simple cost every "
         "start reaches x* = e^(-1/2). The learning rate trades speed for stability: eta = 0.01 "
         "needs >= 5x the steps of eta = 0.1, and eta = 0.3 > 2/J''(x*) never converges.")

X_STAR = math.exp(-0.5)
DOMAIN_LOW = math.exp(-1.0)
TOL = 1e-3          # |x_t - x*| below which an iterate counts as converged
LEARNING_RATES = (0.001, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0)
GOOD, SLOW, TOO_LARGE = 0.1, 0.01, 0.3
WAVY_LR = 0.01      # below 2 / J''(x) at the wavy minima up to x = 6 (J'' ~ 110 at x ~ 5.5)


def _steps_to_converge(xs):
    """First step from which every iterate stays within TOL of x* (-1 if never): [starts]."""
    inside = np.abs(xs - X_STAR) < TOL                          # [starts, T + 1]
    stays = np.flip(np.cumprod(np.flip(inside, 1), 1), 1).astype(bool)
    return np.where(stays[:, -1], np.argmax(stays, 1), -1)


def _simple_runs(starts, steps):
    """Per learning rate: trajectories [starts, steps + 1] from the same starts."""
    return {lr: np.asarray(jl.optim.gradient_descent_many(
        jl.optim.j_simple, starts, learning_rate=lr, steps=steps).xs, np.float64)
        for lr in LEARNING_RATES}


def _wavy_minima(ends):
    """Distinct end points that are local minima of j_wavy (|J'| small, J'' > 0)."""
    ends = jnp.asarray(ends, jnp.float32)
    grad = jax.vmap(jax.grad(jl.optim.j_wavy))
    curvature = jax.vmap(jax.grad(jax.grad(jl.optim.j_wavy)))
    is_min = (np.abs(np.asarray(grad(ends))) < 1e-2) & (np.asarray(curvature(ends)) > 0)
    return sorted({round(float(e), 2) for e, ok in zip(np.asarray(ends), is_min) if ok}), is_min


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    steps = 1000
    n_starts = 6 if quick else 12
    total = seeds + 1
    per_seed = []
    for seed in range(seeds):
        k_simple, k_wavy = jax.random.split(jax.random.key(seed))
        simple_starts = jax.random.uniform(k_simple, (n_starts,), jnp.float32, 0.45, 3.0)
        wavy_starts = jax.random.uniform(k_wavy, (n_starts,), jnp.float32, 0.45, 6.3)
        runs = _simple_runs(simple_starts, steps)
        wavy = jl.optim.gradient_descent_many(jl.optim.j_wavy, wavy_starts,
                                              learning_rate=WAVY_LR, steps=steps)
        minima, is_min = _wavy_minima(wavy.xs[:, -1])
        per_seed.append({"runs": runs, "simple_starts": np.asarray(simple_starts),
                         "wavy_starts": np.asarray(wavy_starts), "wavy": wavy,
                         "wavy_minima": minima, "wavy_all_minima": bool(is_min.all())})
        if progress:
            progress(seed + 1, total)

    # Table over all starts of all seeds.
    table = {}
    for lr in LEARNING_RATES:
        xs = np.concatenate([s["runs"][lr] for s in per_seed])
        conv = _steps_to_converge(xs)
        left = np.any(xs <= DOMAIN_LOW, axis=1) | ~np.all(np.isfinite(xs), axis=1)
        final_err = np.abs(xs[:, -1] - X_STAR)
        table[lr] = {"converged_fraction": float(np.mean(conv >= 0)),
                     "steps_to_converge": [int(c) for c in conv if c >= 0],
                     "median_final_error": float(np.nanmedian(final_err)),
                     "max_final_error": float(np.nanmax(final_err)),
                     "left_domain_fraction": float(np.mean(left))}
    rows = []
    for lr, t in table.items():
        steps_cell = fmt_mean_sd(t["steps_to_converge"], 1) if t["steps_to_converge"] else "never"
        rows.append((lr, f"{t['converged_fraction']:.2f}", steps_cell,
                     f"{t['median_final_error']:.2e}", f"{t['left_domain_fraction']:.2f}"))

    fig_paths = _path_figure(per_seed[0], steps)
    fig_lr = _learning_rate_figure(per_seed[0]["runs"], steps)
    if progress:
        progress(total, total)

    good, slow, large = table[GOOD], table[SLOW], table[TOO_LARGE]
    speedup = (np.mean(slow["steps_to_converge"]) / np.mean(good["steps_to_converge"])
               if slow["steps_to_converge"] and good["steps_to_converge"] else float("nan"))
    n_minima = [len(s["wavy_minima"]) for s in per_seed]
    return Outcome(
        name="gradient_descent", claim=CLAIM,
        checks=[Check("j_wavy: distinct local minima reached (min over seeds)", min(n_minima),
                      ">=", 2),
                Check("j_wavy: fraction of seeds whose every end point is a local minimum",
                      float(np.mean([s["wavy_all_minima"] for s in per_seed])), ">=", 1.0),
                Check(f"j_simple, eta={GOOD}: fraction of starts converged to x*",
                      good["converged_fraction"], ">=", 1.0),
                Check(f"j_simple, eta={GOOD}: max |x_T - x*|", good["max_final_error"], "<=",
                      1e-4),
                Check(f"j_simple: steps to converge, eta={SLOW} / eta={GOOD}", float(speedup),
                      ">=", 5.0),
                Check(f"j_simple, eta={TOO_LARGE}: fraction of starts converged",
                      large["converged_fraction"], "<=", 0.0)],
        numbers={"x_star": X_STAR, "tolerance": TOL, "steps": steps, "starts_per_seed": n_starts,
                 "seeds": seeds, "learning_rate_table": {str(k): v for k, v in table.items()},
                 "wavy_learning_rate": WAVY_LR,
                 "wavy_minima_per_seed": [s["wavy_minima"] for s in per_seed],
                 "simple_starts": [s["simple_starts"] for s in per_seed],
                 "wavy_starts": [s["wavy_starts"] for s in per_seed]},
        figures={"trajectories": fig_paths, "learning_rates": fig_lr},
        tables={f"GD on j_simple from {n_starts} random starts in [0.45, 3] x {seeds} seed(s), "
                f"{steps} steps; converged = |x_t - x*| < {TOL} from some step on":
                markdown_table(("learning rate", "converged (fraction)",
                                "steps to converge (mean +- sd)", "median |x_T - x*|",
                                "left the domain x > 1/e (fraction)"), rows)},
        notes=("Near x* the error is multiplied by 1 - 8 eta per step, so the steps to reach a "
               "tolerance scale like 1/eta for small eta (the 5x threshold is half the 10x "
               "ratio of the learning rates), and eta > 0.25 makes |1 - 8 eta| > 1: the iterates "
               "settle into an oscillation around x* instead of converging. Larger steps can land "
               "left of 1/e, where 1 + log x <= 0 and J is no longer the lecture's cost."))


def _path_figure(seed_run, steps):
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_s, ax_w = fig.subplots(1, 2)
    grid = np.linspace(0.4, 3.1, 400, dtype=np.float32)
    ax_s.plot(grid, np.asarray(jl.optim.j_simple(grid)), "k", lw=1.2, label="$J(x)$")
    xs = seed_run["runs"][GOOD]
    colors = [f"C{i % 10}" for i in range(xs.shape[0])]
    for path, color in zip(xs[:4], colors):
        vals = np.asarray(jl.optim.j_simple(path[:30].astype(np.float32)))
        ax_s.plot(path[:30], vals, "o-", ms=3, lw=0.7, color=color, alpha=0.8,
                  label=f"start {path[0]:.2f}")
    ax_s.axvline(X_STAR, color="gray", ls=":", label="$x^* = e^{-1/2}$")
    ax_s.set(title=f"$J(x) = x^2/(1+\\log x)$: GD with $\\eta$ = {GOOD} (first 30 steps)",
             xlabel="x", ylabel="J(x)", ylim=(0.5, 4.5))
    ax_s.legend(fontsize=7)

    grid = np.linspace(0.42, 6.4, 800, dtype=np.float32)
    ax_w.plot(grid, np.asarray(jl.optim.j_wavy(grid)), "k", lw=1.2, label="$J(x)$")
    wavy = np.asarray(seed_run["wavy"].xs)
    minima = seed_run["wavy_minima"]
    for path in wavy:
        end = round(float(path[-1]), 2)
        color = f"C{minima.index(end) % 10}" if end in minima else "gray"
        ax_w.plot(path, np.asarray(jl.optim.j_wavy(path.astype(np.float32))), "-", lw=1.0,
                  color=color, alpha=0.7)
        ax_w.plot(path[0], float(jl.optim.j_wavy(path[:1])[0]), "o", ms=5, mfc="white",
                  color=color)
    for i, m in enumerate(minima):
        ax_w.plot(m, float(jl.optim.j_wavy(np.float32([m]))[0]), "*", ms=14, color=f"C{i % 10}",
                  mec="k", label=f"local minimum reached: x = {m:.2f}")
    ax_w.set(title=f"$J(x) = x^2 \\sin(\\pi x)/(1+\\log x)$: GD, $\\eta$ = {WAVY_LR}, "
                   f"{steps} steps", xlabel="x (circles: starts)", ylabel="J(x)")
    ax_w.legend(fontsize=7, loc="lower left")
    fig.suptitle("Where gradient descent ends depends on where it starts")
    return fig


def _learning_rate_figure(runs, steps):
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_x, ax_j = fig.subplots(1, 2)
    shown = (0.01, 0.1, 0.2, 0.3, 0.5, 1.0)
    j_star = 2.0 / math.e
    floor = 1e-8  # below float32's resolution of J near J(x*) = 0.74 (~4e-8)
    t = np.arange(steps + 1)
    for i, lr in enumerate(shown):
        path = runs[lr][0]
        ax_x.plot(t[:60], path[:60], "-", lw=1.2, color=f"C{i}", label=f"$\\eta$ = {lr}")
        if np.all(path > DOMAIN_LOW):  # outside the domain J is not the lecture's cost
            gap = np.asarray(jl.optim.j_simple(path.astype(np.float32)), np.float64) - j_star
            ax_j.plot(t + 1, np.maximum(gap, floor), "-", lw=1.2, color=f"C{i}",
                      label=f"$\\eta$ = {lr}")
    ax_x.axhline(X_STAR, color="gray", ls=":", label="$x^*$")
    ax_x.axhline(DOMAIN_LOW, color="k", ls="--", lw=0.8, label="domain edge $1/e$")
    ax_x.set(title=f"iterates from $x_0$ = {runs[shown[0]][0][0]:.2f} (first 60 steps)",
             xlabel="iteration t", ylabel="$x_t$", yscale="log")
    ax_x.legend(fontsize=7, ncols=2)
    ax_j.set(xscale="log", yscale="log", xlabel="iteration t + 1", ylabel="$J(x_t) - J(x^*)$",
             title=f"cost gap of the runs that stay in the domain\n(values below float32 "
                   f"resolution drawn at {floor:g})")
    ax_j.legend(fontsize=7)
    fig.suptitle("The learning rate: too small is slow, too large oscillates or jumps out of the "
                 "domain (here $2/J''(x^*) = 0.25$)")
    return fig
