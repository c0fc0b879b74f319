"""Gradient descent: where it ends depends on where it starts, and how fast on the learning rate.

The lecture's two costs on ``x > 1/e``: ``J(x) = x^2 / (1 + log x)``, whose only minimiser is
``x* = e^{-1/2}`` with ``J''(x*) = 8``, and the wavy ``J(x) = x^2 sin(pi x) / (1 + log x)`` with
a local minimum in every period. GD ``x_{t+1} = x_t - eta J'(x_t)`` converges near ``x*`` when
``|1 - eta J''(x*)| < 1``, i.e. ``eta < 2/8 = 0.25``: smaller ``eta`` is slower (the error
shrinks by ``1 - 8 eta`` per step), larger ``eta`` overshoots and oscillates, and a very large
step can jump out of the domain.

Each seed draws its own random starts. The evidence (checks over seeds, Student t intervals):

- "reaches the minimum its start lies above": per seed, the fraction of wavy starts that end at
  the local minimum of their own valley (the valleys are bounded by J's local maxima, located on
  a fine grid), claimed ``>= 1`` (every start; the claim);
- "eta = 0.01 needs >= 5x the steps of eta = 0.1": per seed, mean steps to converge at 0.01
  over mean steps at 0.1 (theory: steps scale like 1/eta, a 10x ratio; 5x is half of it as a
  practical margin, since the approach from far starts is not in the linear regime).

Theorems stay as labelled sanity checks (exact): with eta = 0.1 every start converges
(contraction factor |1 - 8 eta| = 0.2 near x*), with eta = 0.3 none does (|1 - 8 eta| = 1.4 > 1).
Seeds: quick 3 (1 before), full 10 (~26 s on a 2-core CPU shared with other jobs, load ~25: all
seeds' starts run as one vmapped batch).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Gradient descent reaches the minimum its start lies above: on the wavy cost every start "
         "ends at the local minimum of its own valley (starts in different valleys end in "
         "different local minima), while on the simple cost every "
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


def _valleys(low=0.4, high=6.6, n=200_001):
    """J_wavy's local minima and the maxima that bound their valleys on ``(low, high)``.

    Located where J' changes sign on a grid of ``n`` points (spacing 3e-5, well below the 0.01
    tolerance the end points are matched with). Returns ``(minima, maxima)``, increasing.
    """
    grid = np.linspace(low, high, n, dtype=np.float32)
    slope = np.sign(np.asarray(jax.vmap(jax.grad(jl.optim.j_wavy))(jnp.asarray(grid))))
    change = np.nonzero(slope[:-1] != slope[1:])[0]
    minima = [float(grid[i + 1]) for i in change if slope[i] < 0 < slope[i + 1]]
    maxima = [float(grid[i + 1]) for i in change if slope[i] > 0 > slope[i + 1]]
    return minima, maxima


def _own_valley_fraction(starts, ends, minima, maxima):
    """Fraction of starts whose end point is within 0.01 of the minimum of the valley the start
    lies in (between the local maxima around it)."""
    valley = np.searchsorted(np.asarray(maxima), starts)     # index among the maxima bounds
    bounds = np.concatenate([[-np.inf], maxima, [np.inf]])
    own = np.array([next(m for m in minima if bounds[v] < m < bounds[v + 1]) for v in valley])
    return float(np.mean(np.abs(np.asarray(ends) - own) < 1e-2))


def _wavy_minima(ends):
    """Distinct end points that are local minima of j_wavy (|J'| small, J'' > 0)."""
    ends = jnp.asarray(ends, jnp.float32)
    grad = jax.vmap(jax.grad(jl.optim.j_wavy))
    curvature = jax.vmap(jax.grad(jax.grad(jl.optim.j_wavy)))
    is_min = (np.abs(np.asarray(grad(ends))) < 1e-2) & (np.asarray(curvature(ends)) > 0)
    return sorted({round(float(e), 2) for e, ok in zip(np.asarray(ends), is_min) if ok}), is_min


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(3, 10))
    seeds = len(seed_values)
    steps = 1000
    n_starts = 6 if quick else 12
    total = seeds + 1
    keys = [jax.random.split(jax.random.key(seed)) for seed in seed_values]
    simple_starts = [jax.random.uniform(k[0], (n_starts,), jnp.float32, 0.45, 3.0) for k in keys]
    wavy_starts = [jax.random.uniform(k[1], (n_starts,), jnp.float32, 0.45, 6.3) for k in keys]
    # Every seed's starts in one batch: one compiled program per learning rate for all seeds.
    all_runs = _simple_runs(jnp.concatenate(simple_starts), steps)
    all_wavy = jl.optim.gradient_descent_many(jl.optim.j_wavy, jnp.concatenate(wavy_starts),
                                              learning_rate=WAVY_LR, steps=steps)
    valley_minima, valley_maxima = _valleys()
    per_seed = []
    for i in range(seeds):
        part = slice(i * n_starts, (i + 1) * n_starts)
        wavy = jax.tree.map(lambda a, part=part: a[part], all_wavy)
        ends = np.asarray(wavy.xs[:, -1])
        minima, is_min = _wavy_minima(ends)
        per_seed.append({"runs": {lr: xs[part] for lr, xs in all_runs.items()},
                         "simple_starts": np.asarray(simple_starts[i]),
                         "wavy_starts": np.asarray(wavy_starts[i]), "wavy": wavy,
                         "wavy_minima": minima, "wavy_all_minima": bool(is_min.all()),
                         "own_valley": _own_valley_fraction(np.asarray(wavy_starts[i]), ends,
                                                            valley_minima, valley_maxima)})
        if progress:
            progress(i + 1, total)

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

    good, large = table[GOOD], table[TOO_LARGE]
    speedup = []   # per seed: mean steps at eta = SLOW over mean steps at eta = GOOD
    for s in per_seed:
        steps_slow, steps_good = (_steps_to_converge(s["runs"][lr]) for lr in (SLOW, GOOD))
        speedup.append(float(np.mean(steps_slow)) / float(np.mean(steps_good))
                       if np.all(steps_slow >= 0) and np.all(steps_good >= 0) else float("nan"))
    n_minima = [len(s["wavy_minima"]) for s in per_seed]
    own_valley = [s["own_valley"] for s in per_seed]
    return Outcome(
        name="gradient_descent", claim=CLAIM,
        checks=[Check.sample("j_wavy: fraction of starts that end at their own valley's minimum",
                             own_valley, ">=", 1.0,
                             source="claim: GD reaches the minimum its start lies above"),
                Check.sample(f"j_simple: steps to converge, eta={SLOW} / eta={GOOD} (per seed)",
                             speedup, ">=", 5.0,
                             source="theory: steps scale like 1/eta (10x); 5x = half of it, a "
                                    "practical margin for the non-linear approach"),
                Check(f"j_simple, eta={GOOD}: fraction of starts converged to x* (all seeds)",
                      good["converged_fraction"], ">=", 1.0, exact=True,
                      source="theory: |1 - 8 eta| = 0.2 < 1, x* attracts"),
                Check(f"j_simple, eta={TOO_LARGE}: fraction of starts converged (all seeds)",
                      large["converged_fraction"], "<=", 0.0, exact=True,
                      source="theory: |1 - 8 eta| = 1.4 > 1, x* repels")],
        numbers={"x_star": X_STAR, "tolerance": TOL, "steps": steps, "starts_per_seed": n_starts,
                 "seeds": seeds, "learning_rate_table": {str(k): v for k, v in table.items()},
                 "wavy_learning_rate": WAVY_LR,
                 "wavy_minima_per_seed": [s["wavy_minima"] for s in per_seed],
                 "wavy_distinct_minima_per_seed": n_minima, "own_valley_fraction": own_valley,
                 "valley_minima": valley_minima, "valley_maxima": valley_maxima,
                 "speedup_per_seed": speedup, "seed_values": list(seed_values),
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
               "left of 1/e, where 1 + log x <= 0 and J is no longer the lecture's cost. The "
               "valleys of the wavy cost are bounded by its local maxima at "
               + ", ".join(f"{m:.2f}" for m in valley_maxima) + f"; the seeds' starts reached "
               f"{min(n_minima)} to {max(n_minima)} distinct minima each. The two exact checks "
               "are theorems (sanity checks of the code), not evidence."
               + (" Quick mode: 6 starts per seed instead of 12." if quick else "")))


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
