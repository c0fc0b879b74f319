"""Losses and information: cross-entropy, KL, BCE vs MSE gradients, softmax as a soft arg max.

The claim is mostly mathematics, so most checks are labelled sanity checks (theorems and
identities evaluated numerically, no seed noise; several hold by how the library computes them:
KL is implemented as H(p, q) - H(p)). The evidence is one measured consequence of the loss
choice on trained models, paired over seeds: logistic regression started saturated and wrong
(w = -10 u), trained by the same full-batch gradient descent on BCE and on MSE; CLAIM says the
cross-entropy gradient stays ~ -1 while MSE's vanishes, so the training accuracy after 100 steps
of BCE minus that of MSE must be > 0 (the claim's direction; Student t 95% interval). Seeds:
quick 3, full 10 (the training is one jitted jax.vmap over seeds, a few seconds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("The cross-entropy H(p, q) is smallest at q = p, where it equals the entropy H(p), so "
         "KL(p || q) = H(p, q) - H(p) >= 0; on a saturated wrong sigmoid the cross-entropy "
         "gradient stays ~ -1 while the MSE gradient vanishes; softmax(z / T) tends to the one-hot "
         "arg max as T -> 0 and to the uniform distribution as T -> infinity.")

N_CLASSES = 5
LOGITS = (3.0, 1.5, 1.0, -0.5, -2.0)        # the softmax example; arg max = class 0
P_BINARY = 0.3                               # the two-class example p = (0.3, 0.7)
# Training from a saturated wrong start: full-batch gradient descent, the same for both losses.
STEPS, LEARNING_RATE = 100, 1.0
QUICK_FULL_SEEDS = (3, 10)


def _sanity(what, value, op, threshold):
    """A sanity check without seed noise (theory): judged on its value."""
    return Check(what, value, op, threshold, exact=True,
                 source="theory: a theorem or an identity checked numerically, no seed noise")


def _cross_entropy_sweep(key, ts):
    """``H(p, q_t)`` for ``q_t = softmax(t log p)`` (``t = 0``: uniform, ``t = 1``: ``q = p``,
    ``t -> inf``: one-hot), with ``p ~ Dirichlet(1)`` over ``N_CLASSES`` classes."""
    p = jax.random.dirichlet(key, jnp.ones(N_CLASSES))
    q = jax.nn.softmax(ts[:, None] * jnp.log(p)[None, :], axis=-1)            # [n_t, K]
    ce = jl.losses.cross_entropy(jnp.broadcast_to(p, q.shape), q)              # [n_t]
    return np.asarray(ce), float(jl.losses.entropy(p))


def _kl_pairs(key, n):
    """KL both ways and ``H(p, q) - H(p)`` for ``n`` random pairs of distributions."""
    k_p, k_q, k_a = jax.random.split(key, 3)
    # Concentrations from 0.3 (peaked) to 3 (flat), so the pairs range from near to far apart.
    alpha = jnp.exp(jax.random.uniform(k_a, (n, 1), minval=np.log(0.3), maxval=np.log(3.0)))
    alpha = jnp.broadcast_to(alpha, (n, N_CLASSES))
    p = jax.random.dirichlet(k_p, alpha)
    q = jax.random.dirichlet(k_q, alpha)
    kl_pq = jl.losses.kl_divergence(p, q)
    kl_qp = jl.losses.kl_divergence(q, p)
    gap = jl.losses.cross_entropy(p, q) - jl.losses.entropy(p)
    kl_pp = jl.losses.kl_divergence(p, p)
    return tuple(np.asarray(a) for a in (kl_pq, kl_qp, gap, kl_pp))


def _logit_gradients(z):
    """d loss / d z for label 1: BCE from logits vs MSE on the sigmoid output."""
    ones = jnp.ones_like(z)
    bce = jax.grad(lambda v: jnp.sum(jl.losses.sigmoid_binary_cross_entropy(v, ones)))(z)
    mse = jax.grad(lambda v: jnp.sum(jl.losses.mse(jax.nn.sigmoid(v), ones)))(z)
    return np.asarray(bce), np.asarray(mse)


def _saturated_training(seed_values, *, n=200, dim=2, scale=10.0, steps=STEPS,
                        learning_rate=LEARNING_RATE):
    """Logistic regression started saturated and wrong, trained by full-batch gradient descent
    on BCE (from logits) and on MSE (on the sigmoid output), same data, start and steps.

    Per seed: ``x ~ N(0, I)`` ``[n, dim]``, labels ``y = 1[x . u > 0]`` for a random unit ``u``,
    and the start ``w = -scale u, b = 0``: every example is on the wrong side with logit
    ``-scale |x . u|`` (most of them below -5). Returns ``{loss: [seeds]}`` of the training
    accuracy after ``steps`` steps and of the accuracy at the start (the same for both).
    """
    def one(seed):
        k_x, k_u = jax.random.split(jax.random.key(seed))
        x = jax.random.normal(k_x, (n, dim))
        u = jax.random.normal(k_u, (dim,))
        u = u / jnp.linalg.norm(u)
        y = (x @ u > 0).astype(jnp.float32)
        start = {"w": -scale * u, "b": jnp.zeros(())}

        def logits(p):
            return x @ p["w"] + p["b"]

        objectives = {
            "bce": lambda p: jnp.mean(jl.losses.sigmoid_binary_cross_entropy(logits(p), y)),
            "mse": lambda p: jnp.mean(jl.losses.mse(jax.nn.sigmoid(logits(p)), y))}
        optimizer = optax.sgd(learning_rate)

        def train(objective):
            def step(carry, _):
                p, state = carry
                updates, state = optimizer.update(jax.grad(objective)(p), state, p)
                return (optax.apply_updates(p, updates), state), None
            (p, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), None, length=steps)
            return jnp.mean((logits(p) > 0) == (y > 0))

        return ({name: train(f) for name, f in objectives.items()},
                jnp.mean((logits(start) > 0) == (y > 0)))

    accuracy, at_start = jax.jit(jax.vmap(one))(jnp.asarray(seed_values))
    return {k: np.asarray(v) for k, v in accuracy.items()}, np.asarray(at_start)


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=QUICK_FULL_SEEDS)
    seeds = len(seed_values)
    n_pairs = 5000 if quick else 50000
    total = seeds + 3

    # 1. Cross-entropy over a one-parameter family through p: argmin at t = 1 (q = p).
    ts = jnp.linspace(0.0, 3.0, 301)
    step = float(ts[1] - ts[0])
    ce_curves, entropies, argmins, excess_at_min, below = [], [], [], [], []
    for i, seed in enumerate(seed_values):
        ce, h = _cross_entropy_sweep(jax.random.key(seed), ts)
        ce_curves.append(ce)
        entropies.append(h)
        argmins.append(float(ts[int(np.argmin(ce))]))
        excess_at_min.append(float(ce.min() - h))
        below.append(float(np.min(ce - h)))
        if progress:
            progress(i + 1, total)
    s = jnp.linspace(0.001, 0.999, 999)
    p2 = jnp.broadcast_to(jnp.array([P_BINARY, 1 - P_BINARY]), (s.shape[0], 2))
    q2 = jnp.stack([s, 1 - s], axis=1)
    ce2 = np.asarray(jl.losses.cross_entropy(p2, q2))
    h2 = float(jl.losses.entropy(p2[0]))
    kl2 = np.asarray(jl.losses.kl_divergence(p2, q2))
    s_star = float(s[int(np.argmin(ce2))])

    # 2. KL >= 0 on random pairs, = 0 at q = p, = H(p, q) - H(p); not symmetric.
    kl_pq, kl_qp, gap, kl_pp = _kl_pairs(jax.random.key(1000 + seed_offset), n_pairs)

    # 3. Saturated wrong prediction: label 1, logit z from -10 to 10.
    z = jnp.linspace(-10.0, 10.0, 201)
    g_bce, g_mse = _logit_gradients(z)
    sigma = np.asarray(jax.nn.sigmoid(z))
    at = {float(v): int(np.argmin(np.abs(np.asarray(z) - v))) for v in (-10, -5, -2, 0, 2, 5)}
    ratio_at_m10 = abs(g_mse[at[-10.0]]) / abs(g_bce[at[-10.0]])
    # ... and its consequence for training (the evidence): the same saturated wrong start, the
    # same steps, the two losses; paired over seeds (each seed its own data and start).
    accuracy, at_start = _saturated_training(seed_values)
    if progress:
        progress(seeds + 2, total)

    # 4. Softmax as a smooth arg max: temperature sweep.
    logits = jnp.array(LOGITS)
    temps = jnp.logspace(-2, 2, 81)
    probs = np.asarray(jax.nn.softmax(logits[None, :] / temps[:, None], axis=-1))   # [n_T, K]
    ent_t = np.asarray(jl.losses.entropy(jnp.asarray(probs)))
    one_hot = np.eye(N_CLASSES)[int(jnp.argmax(logits))]
    cold = float(np.max(np.abs(probs[0] - one_hot)))
    hot = float(np.max(np.abs(probs[-1] - 1.0 / N_CLASSES)))
    if progress:
        progress(total, total)

    checks = [
        Check.sample(f"training accuracy after {STEPS} GD steps from a saturated wrong start: "
                     "BCE - MSE (paired over seeds)", accuracy["bce"] - accuracy["mse"], ">", 0.0,
                     source="CLAIM: the cross-entropy gradient stays ~ -1 where MSE's vanishes, "
                            "so from the same start BCE learns and MSE stalls (direction, 0)"),
        _sanity("H(p, q_t) arg min over t: max |t* - 1| over seeds (grid step 0.01)",
              max(abs(t - 1.0) for t in argmins), "<=", step / 2 + 1e-9),
        _sanity("min_t H(p, q_t) - H(p): max over seeds (Gibbs: = 0 at q = p)",
              max(excess_at_min), "<", 1e-5),
        _sanity("H(p, q_t) - H(p) over the sweep: min over seeds (Gibbs: >= 0)", min(below),
              ">", -1e-5),
        _sanity(f"min KL(p || q) over {n_pairs} random pairs (float32 round-off allowed)",
              float(min(kl_pq.min(), kl_qp.min())), ">=", -1e-6),
        _sanity("max |KL(p || p)|", float(np.max(np.abs(kl_pp))), "<", 1e-6),
        _sanity("max |KL(p || q) - (H(p, q) - H(p))|", float(np.max(np.abs(kl_pq - gap))), "<",
              1e-4),
        _sanity("BCE gradient dL/dz at z = -10, label 1 (~ sigma(z) - 1 = -1)",
              float(g_bce[at[-10.0]]), "<=", -0.99),
        _sanity("|MSE gradient| / |BCE gradient| at z = -10 (MSE's sigma'(z) factor)",
              float(ratio_at_m10), "<", 1e-3),
        _sanity("max |BCE gradient - (sigma(z) - y)| over z in [-10, 10]",
              float(np.max(np.abs(g_bce - (sigma - 1.0)))), "<", 1e-6),
        _sanity("softmax(z / T) at T = 0.01: max |p - one-hot(arg max)|", cold, "<", 1e-6),
        _sanity("softmax(z / T) at T = 100: max |p - 1/K|", hot, "<", 0.01),
        _sanity("entropy of softmax(z / T) is increasing in T: min step",
              float(np.min(np.diff(ent_t))), ">=", -1e-6),
    ]

    numbers = {
        "seeds": seeds, "n_classes": N_CLASSES,
        "cross_entropy": {"t_grid": [0.0, 3.0, 301], "argmin_t": argmins, "entropy_p": entropies,
                          "excess_at_min": excess_at_min, "min_excess": below,
                          "binary_p": P_BINARY, "binary_argmin_q": s_star, "binary_entropy": h2},
        "kl": {"n_pairs": n_pairs, "min_kl_pq": float(kl_pq.min()), "min_kl_qp": float(kl_qp.min()),
               "mean_kl_pq": float(kl_pq.mean()), "max_abs_kl_pp": float(np.max(np.abs(kl_pp))),
               "max_abs_kl_minus_gap": float(np.max(np.abs(kl_pq - gap))),
               "mean_abs_asymmetry": float(np.mean(np.abs(kl_pq - kl_qp)))},
        "logit_gradients": {f"z={k:g}": {"bce": float(g_bce[i]), "mse": float(g_mse[i])}
                            for k, i in at.items()},
        "mse_over_bce_at_z_-10": float(ratio_at_m10),
        "saturated_training": {"steps": STEPS, "learning_rate": LEARNING_RATE,
                               "accuracy_at_start": at_start.tolist(),
                               "accuracy": {k: v.tolist() for k, v in accuracy.items()},
                               "bce_minus_mse": (accuracy["bce"] - accuracy["mse"]).tolist()},
        "softmax": {"logits": list(LOGITS), "T_min": 0.01, "T_max": 100.0,
                    "max_dev_one_hot_at_T_min": cold, "max_dev_uniform_at_T_max": hot,
                    "entropy_at_T_min": float(ent_t[0]), "entropy_at_T_max": float(ent_t[-1]),
                    "log_K": float(np.log(N_CLASSES))},
    }
    grad_rows = [(f"{k:g}", float(sigma[i]), float(g_bce[i]), float(g_mse[i]),
                  float(abs(g_mse[i]) / abs(g_bce[i]))) for k, i in at.items()]
    shown_t = (0.01, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0)
    idx_t = [int(np.argmin(np.abs(np.asarray(temps) - t))) for t in shown_t]
    soft_rows = [(f"{float(temps[i]):.3g}", *(float(v) for v in probs[i]), float(ent_t[i]) + 0.0)
                 for i in idx_t]
    return Outcome(
        name="losses", claim=CLAIM, checks=checks, numbers=numbers,
        figures={"cross_entropy": _ce_figure(ts, ce_curves, entropies, s, ce2, kl2, h2),
                 "kl": _kl_figure(kl_pq, kl_qp),
                 "bce_vs_mse": _grad_figure(z, g_bce, g_mse, sigma),
                 "softmax_temperature": _softmax_figure(temps, probs, ent_t)},
        tables={"Gradient w.r.t. the logit z for label 1":
                markdown_table(("z", "sigma(z)", "BCE dL/dz", "MSE dL/dz", "|MSE| / |BCE|"),
                               grad_rows),
                f"Training accuracy after {STEPS} full-batch GD steps (learning rate "
                f"{LEARNING_RATE:g}) from a saturated wrong start, mean +- sd over {seeds} seeds":
                markdown_table(("loss", "accuracy at the start", "accuracy after training"),
                               [(name, fmt_mean_sd(at_start), fmt_mean_sd(accuracy[key]))
                                for key, name in (("bce", "BCE from logits"),
                                                  ("mse", "MSE on sigmoid(z)"))]),
                f"softmax(z / T) for z = {LOGITS}":
                markdown_table(("T", *(f"p_{k}" for k in range(N_CLASSES)), "entropy (nats)"),
                               soft_rows)},
        notes=("The evidence is the training check: logistic regression on 200 linearly "
               "separable 2-D points per seed, started at w = -10 u (u the true direction), so "
               "every point is misclassified with a logit mostly below -5; full-batch gradient "
               f"descent, {STEPS} steps at learning rate {LEARNING_RATE:g}, on BCE and on MSE "
               "from the same start (paired). The other checks are sanity checks of theorems "
               "and identities (no seed noise): they fail only if the library is wrong. "
               "q_t = softmax(t log p) runs from the uniform distribution (t = 0) through p "
               "(t = 1) to the one-hot arg max of p (t -> inf). KL pairs: p, q ~ Dirichlet(alpha) "
               "with alpha between 0.3 and 3. Gradients by jax.grad of jl.losses."
               "sigmoid_binary_cross_entropy (from logits) and of jl.losses.mse on sigmoid(z)."))


def _ce_figure(ts, ce_curves, entropies, s, ce2, kl2, h2):
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax2, ax5 = fig.subplots(1, 2)
    s = np.asarray(s)
    ax2.plot(s, ce2, color="#d95f02", label="cross-entropy H(p, q)")
    ax2.plot(s, kl2, color="#7570b3", label="KL(p || q) = H(p, q) - H(p)")
    ax2.axhline(h2, color="black", ls="--", lw=1, label=f"entropy H(p) = {h2:.3f}")
    ax2.axvline(P_BINARY, color="gray", ls=":", lw=1, label=f"q = p = {P_BINARY}")
    ax2.set(xlabel="q = P(class 1) of the model", ylabel="nats", ylim=(0, 3),
            title=f"Two classes, p = ({P_BINARY}, {1 - P_BINARY:.1f})")
    ax2.legend(fontsize=8)
    t = np.asarray(ts)
    for i, (ce, h) in enumerate(zip(ce_curves, entropies)):
        ax5.plot(t, ce - h, label=f"seed {i}: H(p) = {h:.2f}")
    ax5.axvline(1.0, color="gray", ls=":", lw=1, label="t = 1 (q = p)")
    ax5.axhline(0.0, color="black", lw=0.8)
    ax5.set(xlabel="t in q_t = softmax(t log p)", ylabel="H(p, q_t) - H(p)  (nats)",
            title=f"{N_CLASSES} classes, random p: minimum at t = 1")
    ax5.legend(fontsize=8)
    fig.suptitle("Cross-entropy H(p, q) >= H(p), with equality exactly at q = p")
    return fig


def _kl_figure(kl_pq, kl_qp):
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_hist, ax_sym = fig.subplots(1, 2)
    low = np.floor(np.log10(max(float(kl_pq.min()), 1e-8)))
    bins = np.logspace(low, np.log10(max(kl_pq.max(), 1e-4)) + 0.1, 60)
    ax_hist.hist(np.maximum(kl_pq, 10 ** low), bins=bins, color="#7570b3")
    ax_hist.set(xscale="log", xlabel="KL(p || q)  (nats)",
                ylabel="number of pairs",
                title=f"{kl_pq.size} random pairs: min KL = {kl_pq.min():.2g} >= 0")
    top = float(max(kl_pq.max(), kl_qp.max()))
    ax_sym.scatter(kl_pq, kl_qp, s=2, alpha=0.3, color="#1b9e77")
    ax_sym.plot([0, top], [0, top], color="black", lw=1, label="KL(p||q) = KL(q||p)")
    ax_sym.set(xlabel="KL(p || q)", ylabel="KL(q || p)", xlim=(0, top), ylim=(0, top),
               title="KL is not symmetric")
    ax_sym.legend(fontsize=8)
    fig.suptitle("Kullback-Leibler divergence: never negative, not a distance")
    return fig


def _grad_figure(z, g_bce, g_mse, sigma):
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_g, ax_log = fig.subplots(1, 2)
    z = np.asarray(z)
    ax_g.plot(z, g_bce, color="#d95f02", label="BCE from logits: sigma(z) - y")
    ax_g.plot(z, g_mse, color="#1b9e77", label="MSE on sigma(z): 2 (sigma - y) sigma'(z)")
    ax_g.axvspan(-10, -4, color="gray", alpha=0.15, label="saturated and wrong")
    ax_g.set(xlabel="logit z (label y = 1)", ylabel="dL / dz", title="Gradient w.r.t. the logit")
    ax_g.legend(fontsize=8, loc="lower right")
    ax_log.plot(z, np.abs(g_bce), color="#d95f02", label="|BCE gradient|")
    ax_log.plot(z, np.abs(g_mse), color="#1b9e77", label="|MSE gradient|")
    ax_log.plot(z, sigma * (1 - sigma), ":", color="gray", label="sigma'(z)")
    ax_log.set(yscale="log", xlabel="logit z (label y = 1)", ylabel="|dL / dz|",
               title="Log scale: MSE's gradient dies with sigma'(z)")
    ax_log.legend(fontsize=8)
    fig.suptitle("A confidently wrong sigmoid: cross-entropy keeps pushing, MSE stalls")
    return fig


def _softmax_figure(temps, probs, ent_t):
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_p, ax_h = fig.subplots(1, 2)
    t = np.asarray(temps)
    for k in range(N_CLASSES):
        ax_p.plot(t, probs[:, k], label=f"class {k} (z = {LOGITS[k]:g})")
    ax_p.axhline(1.0 / N_CLASSES, color="gray", ls=":", lw=1, label="uniform 1/K")
    ax_p.set(xscale="log", xlabel="temperature T", ylabel="softmax(z / T)_k",
             title="Probabilities: one-hot arg max (T -> 0) to uniform (T -> inf)")
    ax_p.legend(fontsize=8)
    ax_h.plot(t, ent_t, color="black")
    ax_h.axhline(np.log(N_CLASSES), color="gray", ls="--", lw=1, label="log K (uniform)")
    ax_h.set(xscale="log", xlabel="temperature T", ylabel="entropy (nats)",
             title="Entropy grows with T")
    ax_h.legend(fontsize=8)
    fig.suptitle("Softmax is a smooth arg max")
    return fig
