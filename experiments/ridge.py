"""Ridge regression: the L2 penalty trades variance for bias; GD with weight decay finds the same
optimum as the closed form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Ridge regression's closed form and gradient descent with an L2 penalty (or weight "
         "decay) reach the same optimum; on a small noisy data set the test error is U-shaped in "
         "the penalty lambda: too little overfits (variance), too much underfits (bias).")

DEGREE, NOISE = 12, 0.3
LAM_GD = 0.1          # the penalty at which gradient descent is compared with the closed form


def _data(seed, n_train, n_test):
    """Polynomial features (degree 12, standardised on the training set) of 1-D data
    ``y = sin(pi x) + 0.3 eps``, in float64 (their Gram matrix is too ill-conditioned for
    float32 at small lambda)."""
    k_train, k_test = jax.random.split(jax.random.key(seed))
    x, y = jl.data.regression_1d(k_train, n_train, fn="sin", noise=NOISE)
    x_test, y_test = jl.data.regression_1d(k_test, n_test, fn="sin", noise=NOISE)
    x, y, x_test, y_test = (jnp.asarray(a, jnp.float64) for a in (x, y, x_test, y_test))
    feats = jl.features.polynomial_features(x, DEGREE)
    stats = jl.data.fit_standardizer(feats)
    return (x, jl.data.standardize(feats, stats), y, x_test,
            jl.data.standardize(jl.features.polynomial_features(x_test, DEGREE), stats), y_test,
            stats)


def _mse(params, feats, y):
    return float(jnp.mean(jnp.square(jl.linear.linear_predict(params, feats) - y)))


def _gradient_descent(feats, y, lam, steps, route, record):
    """Full-batch gradient descent on ``(1/n) ||F w + b - y||^2 + (lam / n) ||w||^2``, which has
    the same minimiser as ridge's ``||F w + b - y||^2 + lam ||w||^2`` (divide it by ``n``).

    ``route`` ``"penalty"``: the penalty is added to the loss (``jl.fit(penalty=...)``);
    ``"weight_decay"``: plain MSE and ``optax.add_decayed_weights(2 lam / n)`` on ``w`` only.
    The step is ``1 / L``, ``L`` the largest curvature of the objective. ``record(epoch, params)``
    is called after every epoch.
    """
    n, d = feats.shape
    gram = np.asarray(feats.T @ feats) / n
    smooth = 2.0 * max(float(np.linalg.eigvalsh(gram)[-1]) + lam / n, 1.0)
    model = jl.nn.dense(1)
    _, params = model.init(jax.random.key(0), (d,))

    def apply(p, xb):
        return model.apply(p, xb)[..., 0]

    def penalty(p):
        return (lam / n) * jl.losses.l2_penalty(p)

    if route == "penalty":
        optimizer = optax.sgd(1.0 / smooth)
    else:
        optimizer = optax.chain(
            optax.add_decayed_weights(2.0 * lam / n, mask={"w": True, "b": False}),
            optax.sgd(1.0 / smooth))
    # Full-batch steps through jl.fit (which draws batches of examples): the whole training set
    # is one example, repeated steps_per_epoch times, with batch_size=1.
    steps_per_epoch = 500
    xs = jnp.broadcast_to(feats[None], (steps_per_epoch, n, d))
    ys = jnp.broadcast_to(y[None], (steps_per_epoch, n))
    result = jl.fit(apply, params, xs, ys, loss="mse", optimizer=optimizer, key=jax.random.key(1),
                    batch_size=1, steps=steps, penalty=penalty if route == "penalty" else None,
                    callbacks=[lambda epoch, logs, p: record(epoch, p)])
    return {"w": result.params["w"][:, 0], "b": result.params["b"][0]}


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    n_train, n_test = 20, 1000
    lams = np.logspace(-8, 3, 23 if quick else 45)
    gd_steps = 20000 if quick else 30000
    total = seeds + 1

    train_err, test_err, fits = [], [], {}
    x_plot = jnp.linspace(-1.0, 1.0, 400, dtype=jnp.float32)
    with jax.enable_x64(True):
        for seed in range(seeds):
            x, feats, y, _, feats_test, y_test, stats = _data(seed, n_train, n_test)
            tr, te, params_by_lam = [], [], []
            for lam in lams:
                params = jl.linear.ridge(feats, y, float(lam))
                params_by_lam.append(params)
                tr.append(_mse(params, feats, y))
                te.append(_mse(params, feats_test, y_test))
            train_err.append(tr)
            test_err.append(te)
            if seed == 0:
                feats_plot = jl.data.standardize(
                    jl.features.polynomial_features(jnp.asarray(x_plot, jnp.float64)[:, None],
                                                    DEGREE), stats)
                best = int(np.argmin(te))
                for label, i in (("smallest", 0), ("best", best), ("largest", len(lams) - 1)):
                    fits[label] = (float(lams[i]), np.asarray(
                        jl.linear.linear_predict(params_by_lam[i], feats_plot)))
                data0 = (np.asarray(x[:, 0]), np.asarray(y), np.asarray(feats, np.float32),
                         np.asarray(y, np.float32))
                closed = jl.linear.ridge(feats, y, LAM_GD)
                closed = {k: np.asarray(v) for k, v in closed.items()}
                closed_unscaled = {k: np.asarray(v)
                                   for k, v in jl.linear.ridge(feats, y, LAM_GD * n_train).items()}
            if progress:
                progress(seed + 1, total)
    train_err, test_err = np.asarray(train_err), np.asarray(test_err)   # [seeds, n_lams]

    # Gradient descent on seed 0's data, in float32, at lambda = LAM_GD, two ways.
    feats32, y32 = jnp.asarray(data0[2]), jnp.asarray(data0[3])
    gd, traces = {}, {}
    for route in ("penalty", "weight_decay"):
        trace = traces.setdefault(route, [])
        gd[route] = _gradient_descent(
            feats32, y32, LAM_GD, gd_steps, route,
            lambda epoch, p, trace=trace: trace.append(
                float(np.max(np.abs(np.asarray(p["w"][:, 0]) - closed["w"])))))
    gd_diff = {route: max(float(np.max(np.abs(np.asarray(g["w"]) - closed["w"]))),
                          float(abs(np.asarray(g["b"]) - closed["b"])))
               for route, g in gd.items()}
    unscaled_diff = float(np.max(np.abs(closed_unscaled["w"] - closed["w"])))
    if progress:
        progress(total, total)

    best_idx = np.argmin(test_err, axis=1)                                 # per seed
    best_err = test_err[np.arange(seeds), best_idx]
    ratio_small = best_err / test_err[:, 0]
    ratio_large = best_err / test_err[:, -1]
    interior = [0 < i < len(lams) - 1 for i in best_idx]
    w_scale = float(np.max(np.abs(closed["w"])))

    checks = [
        Check(f"GD + L2 penalty vs closed form at lambda={LAM_GD}: max |diff| in (w, b)",
              gd_diff["penalty"], "<", 1e-3 * max(w_scale, 1.0)),
        Check(f"GD + weight decay vs closed form at lambda={LAM_GD}: max |diff| in (w, b)",
              gd_diff["weight_decay"], "<", 1e-3 * max(w_scale, 1.0)),
        Check("best lambda strictly inside the swept range (seeds where it is)",
              float(sum(interior)), ">=", float(seeds)),
        Check("test MSE at the best lambda / at the smallest lambda (max over seeds)",
              float(ratio_small.max()), "<", 0.5),
        Check("test MSE at the best lambda / at the largest lambda (max over seeds)",
              float(ratio_large.max()), "<", 0.5),
    ]

    rows = [(f"{lams[i]:.3g}", fmt_mean_sd(train_err[:, i], 4), fmt_mean_sd(test_err[:, i], 4))
            for i in sorted({0, len(lams) // 4, len(lams) // 2, 3 * len(lams) // 4,
                             len(lams) - 1, *best_idx.tolist()})]
    numbers = {
        "seeds": seeds, "n_train": n_train, "n_test": n_test, "degree": DEGREE, "noise": NOISE,
        "lambdas": lams.tolist(), "train_mse": train_err.tolist(), "test_mse": test_err.tolist(),
        "best_lambda": [float(lams[i]) for i in best_idx], "best_test_mse": best_err.tolist(),
        "best_over_smallest": ratio_small.tolist(), "best_over_largest": ratio_large.tolist(),
        "gd": {"lambda": LAM_GD, "steps": gd_steps, "max_abs_diff": gd_diff,
               "max_abs_w_closed_form": w_scale,
               "max_abs_diff_if_penalty_not_divided_by_n": unscaled_diff},
    }
    return Outcome(
        name="ridge", claim=CLAIM, checks=checks, numbers=numbers,
        figures={"lambda_sweep": _sweep_figure(lams, train_err, test_err),
                 "fits": _fits_figure(x_plot, data0, fits),
                 "gd_convergence": _gd_figure(traces, gd_steps, unscaled_diff)},
        tables={f"Train / test MSE vs lambda, mean +- sd over {seeds} seeds":
                markdown_table(("lambda", "train MSE", "test MSE"), rows)},
        notes=(f"{n_train} training points x ~ U[-1, 1], y = sin(pi x) + {NOISE} eps, polynomial "
               f"features of degree {DEGREE} standardised on the training set; test MSE on "
               f"{n_test} fresh points (noise variance {NOISE ** 2:.2f} is the floor). "
               "jl.linear.ridge minimises the SUM of squared errors + lambda ||w||^2; jl.fit "
               "minimises the MEAN, so the matching penalty is (lambda / n) ||w||^2, or weight "
               "decay 2 lambda / n. Forgetting the 1/n moves the optimum by "
               f"{unscaled_diff:.3g} (max |w| difference). Closed form in float64, GD in float32 "
               f"with step 1/L for {gd_steps} full-batch steps; GD stops ~5e-5 from the float64 "
               "optimum, the float32 round-off of this ill-conditioned problem."))


def _sweep_figure(lams, train_err, test_err):
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for err, color, label in ((train_err, "#1b9e77", "train"), (test_err, "#d95f02", "test")):
        for row in err:
            ax.plot(lams, row, color=color, alpha=0.25, lw=0.8)
        ax.plot(lams, np.exp(np.mean(np.log(err), axis=0)), color=color, lw=2.2,
                label=f"{label} MSE (geometric mean over seeds; thin: each seed)")
    best = np.argmin(np.exp(np.mean(np.log(test_err), axis=0)))
    ax.axvline(lams[best], color="gray", ls=":", label=f"best lambda ~ {lams[best]:.2g}")
    ax.axhline(NOISE ** 2, color="black", ls="--", lw=1, label=f"noise variance {NOISE ** 2:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="ridge penalty lambda",
           ylabel="mean squared error",
           title="Bias-variance: test error is U-shaped in lambda")
    ax.annotate("variance\n(overfits)", xy=(lams[1], test_err[:, 1].max()), fontsize=8,
                va="top")
    ax.annotate("bias\n(underfits)", xy=(lams[-8], NOISE ** 2 * 1.3), fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _fits_figure(x_plot, data0, fits):
    x, y = data0[0], data0[1]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    grid = np.asarray(x_plot)
    ax.plot(grid, np.sin(np.pi * grid), color="black", lw=2, label="truth sin(pi x)")
    ax.scatter(x, y, color="black", s=18, zorder=3, label="training points (seed 0)")
    for (label, (lam, pred)), color in zip(fits.items(), ("#e7298a", "#1b9e77", "#7570b3")):
        ax.plot(grid, pred, color=color, lw=1.5, label=f"{label} lambda = {lam:.2g}")
    ax.set(ylim=(-2.5, 2.5), xlabel="x", ylabel="y",
           title=f"Degree-{DEGREE} ridge fits: small / best / large lambda")
    ax.legend(fontsize=8)
    return fig


def _gd_figure(traces, steps, unscaled_diff):
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for (route, trace), style in zip(traces.items(), ("-", "--")):
        epochs = np.arange(1, len(trace) + 1) * steps / len(trace)
        ax.plot(epochs, trace, style, label=f"GD with {route.replace('_', ' ')}")
    ax.axhline(unscaled_diff, color="gray", ls=":",
               label="distance to the optimum if lambda is not divided by n")
    ax.set(yscale="log", xlabel="full-batch gradient steps",
           ylabel="max |w_t - w_ridge|",
           title=f"Gradient descent converges to the ridge closed form (lambda = {LAM_GD})")
    ax.legend(fontsize=8)
    return fig
