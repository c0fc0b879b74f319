"""Tests for jaxlearn.optim: GD trajectories against calculus, optimiser steps against hand math."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import optim

# ------------------------------------------------------------------------- gradient descent


def test_gd_on_j_simple_reaches_the_closed_form_minimiser():
    # J'(x) = x (1 + 2 log x) / (1 + log x)^2 = 0  <=>  x* = exp(-1/2), J(x*) = 2/e.
    traj = optim.gradient_descent(optim.j_simple, 2.0, learning_rate=0.05, steps=300)
    assert traj.xs.shape == (301,) and traj.values.shape == (301,)
    assert float(traj.xs[0]) == 2.0
    # float32 iterate: 1e-5 absolute is ~20 ulps at 0.6, far below the 1e-3 a stalled GD leaves.
    np.testing.assert_allclose(traj.xs[-1], math.exp(-0.5), atol=1e-5)
    np.testing.assert_allclose(traj.values[-1], 2.0 / math.e, rtol=1e-6)
    # values[t] is J(xs[t]), and GD with a small step never goes uphill on this cost, up to
    # float32 rounding at the flat minimum: 4 ulps of J(x*) = 0.7358 (ulp 6e-8) allowed.
    np.testing.assert_allclose(traj.values, optim.j_simple(traj.xs), rtol=1e-6)
    assert np.all(np.diff(np.asarray(traj.values)) <= 2.5e-7)
    assert float(traj.values[0] - traj.values[-1]) > 1.6


def test_gd_first_step_is_the_gradient_step():
    # x_1 = x_0 - eta J'(x_0) with J'(2) = 2 (1 + 2 log 2) / (1 + log 2)^2 computed by hand.
    lr = 0.05
    traj = optim.gradient_descent(optim.j_simple, 2.0, learning_rate=lr, steps=1)
    grad = 2.0 * (1.0 + 2.0 * math.log(2.0)) / (1.0 + math.log(2.0)) ** 2
    np.testing.assert_allclose(traj.xs[1], 2.0 - lr * grad, rtol=1e-6)


def test_heavy_ball_matches_polyak_recursion_and_optax():
    # On a quadratic J(x) = 0.5 x^T A x the heavy ball is x_{t+1} = x_t - eta A x_t
    # + mu (x_t - x_{t-1}); compare the whole trajectory with that recursion in float64 numpy.
    a = np.diag([1.0, 10.0])
    lr, mu, steps = 0.05, 0.8, 40
    traj = optim.gradient_descent(lambda x: 0.5 * x @ jnp.asarray(a, jnp.float32) @ x,
                                  jnp.array([1.0, 1.0]), learning_rate=lr, steps=steps,
                                  momentum=mu)
    xs = [np.array([1.0, 1.0])]
    prev = xs[0]
    for _ in range(steps):
        new = xs[-1] - lr * a @ xs[-1] + mu * (xs[-1] - prev)
        prev = xs[-1]
        xs.append(new)
    # float32 vs float64 over 40 contracting steps: errors stay near float32 eps (1e-7 relative).
    np.testing.assert_allclose(traj.xs, np.stack(xs), atol=1e-5)
    opt = optax.sgd(lr, momentum=mu)
    x = jnp.array([1.0, 1.0])
    state = opt.init(x)
    for _ in range(steps):
        updates, state = opt.update(jnp.asarray(a, jnp.float32) @ x, state)
        x = optax.apply_updates(x, updates)
    np.testing.assert_allclose(traj.xs[-1], x, atol=1e-6)


def test_j_wavy_different_starts_reach_different_local_minima():
    # The local minima of x^2 sin(pi x) / (1 + log x) near 1.5823 (J = -1.6591) and 3.5443
    # (J = -5.4917) were located on a 2e-5 grid in float64; the maximum at 2.558 separates them.
    traj = optim.gradient_descent_many(optim.j_wavy, jnp.array([1.2, 2.0, 3.0]),
                                       learning_rate=0.01, steps=500)
    assert traj.xs.shape == (3, 501) and traj.values.shape == (3, 501)
    ends = np.asarray(traj.xs[:, -1])
    # 1e-4: the grid resolution plus float32 noise on a flat minimum.
    np.testing.assert_allclose(ends, [1.58229, 1.58229, 3.54426], atol=1e-4)
    np.testing.assert_allclose(traj.values[:, -1], [-1.65912, -1.65912, -5.49171], atol=1e-4)
    # Both are stationary points: |J'| ~ 0 there; and they are genuinely different minima.
    grads = jax.vmap(jax.grad(optim.j_wavy))(jnp.asarray(ends))
    assert np.all(np.abs(np.asarray(grads)) < 1e-3)
    assert ends[2] - ends[0] > 1.9


def test_gd_many_equals_gd_one_at_a_time():
    starts = jnp.array([[0.0, 0.0], [1.0, -2.0]])

    def fn(x):
        return jnp.sum((x - jnp.array([1.0, 2.0])) ** 2) + x[0] * x[1]

    many = optim.gradient_descent_many(fn, starts, learning_rate=0.1, steps=20, momentum=0.3)
    for i in range(2):
        one = optim.gradient_descent(fn, starts[i], learning_rate=0.1, steps=20, momentum=0.3)
        # vmap and a single run do the same float32 operations up to reassociation.
        np.testing.assert_allclose(many.xs[i], one.xs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(many.values[i], one.values, rtol=1e-6, atol=1e-6)


def test_j_functions_refuse_points_outside_the_domain():
    with pytest.raises(ValueError, match=r"x > 1/e"):
        optim.j_simple(jnp.array([0.5, 0.3]))
    with pytest.raises(ValueError, match=r"x > 1/e"):
        optim.j_wavy(0.2)


# ------------------------------------------------------------------------------ optimizers

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
G1 = {"w": jnp.array([0.1, 0.2, -0.4]), "b": jnp.array(1.0)}
G2 = {"w": jnp.array([-0.3, 0.5, 0.2]), "b": jnp.array(-0.5)}


def _updates(opt, grads_seq):
    state = opt.init(PARAMS)
    params = PARAMS
    out = []
    for g in grads_seq:
        u, state = opt.update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(u)
    return out


def _map(fn, *trees):
    return jax.tree.map(lambda *leaves: fn(*[np.asarray(v, np.float64)
                                                       for v in leaves]), *trees)


def _expected(name, lr, mu=0.9, wd=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """Hand-written first two updates of each optimiser (float64 numpy)."""
    p0 = _map(lambda p: p, PARAMS)
    g1 = _map(lambda g, p: g + wd * p, G1, p0) if name != "adamw" else _map(lambda g: g, G1)
    if name == "sgd":
        u1 = _map(lambda g: -lr * g, g1)
        p1 = _map(lambda p, u: p + u, p0, u1)
        g2 = _map(lambda g, p: g + wd * p, G2, p1)
        return u1, _map(lambda g: -lr * g, g2)
    if name in ("momentum", "nesterov"):
        v1 = g1
        u1 = _map(lambda v, g: -lr * (g + mu * v) if name == "nesterov" else -lr * v, v1, g1)
        g2 = _map(lambda g: g, G2)
        v2 = _map(lambda v, g: mu * v + g, v1, g2)
        u2 = _map(lambda v, g: -lr * (g + mu * v) if name == "nesterov" else -lr * v, v2, g2)
        return u1, u2
    if name in ("adam", "adamw"):
        def step(g, m, s, t, p):
            m = b1 * m + (1 - b1) * g
            s = b2 * s + (1 - b2) * g * g
            m_hat, s_hat = m / (1 - b1 ** t), s / (1 - b2 ** t)
            return -lr * (m_hat / (np.sqrt(s_hat) + eps) + wd * p * (name == "adamw")), m, s

        out1 = _map(lambda g, p: step(g, 0.0, 0.0, 1, p)[0], g1, p0)
        m1 = _map(lambda g: (1 - b1) * g, g1)
        s1 = _map(lambda g: (1 - b2) * g * g, g1)
        p1 = _map(lambda p, u: p + u, p0, out1)
        out2 = _map(lambda g, m, s, p: step(g, m, s, 2, p)[0], G2, m1, s1, p1)
        return out1, out2
    assert name == "rmsprop"
    s1 = _map(lambda g: 0.1 * g * g, g1)
    u1 = _map(lambda g, s: -lr * g / np.sqrt(s + eps), g1, s1)
    s2 = _map(lambda g, s: 0.9 * s + 0.1 * g * g, G2, s1)
    u2 = _map(lambda g, s: -lr * g / np.sqrt(s + eps), G2, s2)
    return u1, u2


@pytest.mark.parametrize("name,kwargs,expect_kwargs", [
    ("sgd", {}, {}),
    ("sgd", {"weight_decay": 0.1}, {"wd": 0.1}),
    ("momentum", {"momentum": 0.5}, {"mu": 0.5}),
    ("nesterov", {}, {"mu": 0.9}),
    ("adam", {}, {}),
    ("adamw", {"weight_decay": 0.01}, {"wd": 0.01}),
    ("rmsprop", {}, {}),
])
def test_two_updates_match_hand_computation(name, kwargs, expect_kwargs):
    lr = 0.1
    got = _updates(optim.make_optimizer(name, lr, **kwargs), [G1, G2])
    want = _expected(name, lr, **expect_kwargs)
    # float32 arithmetic vs float64 hand math on O(1) numbers: 1e-6 relative, except Adam's
    # bias correction 1 - b2^t = 2e-3 at t = 2, computed in float32 with a 1.2e-7 absolute
    # rounding error, i.e. 6e-5 relative in s_hat and 3e-5 in the update: 1e-4 there.
    rtol = 1e-4 if name.startswith("adam") else 1e-6
    chex.assert_trees_all_close(tuple(got), tuple(want), rtol=rtol, atol=1e-7)


def test_optimizer_uses_the_schedule():
    opt = optim.make_optimizer("sgd", 1.0, schedule="step", total_steps=4, decay_rate=0.5)
    lrs = [-float(u["b"]) for u in _updates(opt, [{"w": G1["w"], "b": jnp.array(1.0)}] * 4)]
    # steps 0, 1 at 1.0; boundary 4 // 2 = 2 -> 0.5; boundary 3 * 4 // 4 = 3 -> 0.25.
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.5, 0.25], rtol=1e-7)


def test_optimizer_accepts_an_optax_schedule():
    opt = optim.make_optimizer("sgd", optax.linear_schedule(1.0, 0.0, 10))
    u = _updates(opt, [G1, G1])
    np.testing.assert_allclose(u[1]["w"], -0.9 * np.asarray(G1["w"]), rtol=1e-6)


@pytest.mark.parametrize("schedule,kwargs,steps,values", [
    (None, {}, [0, 50, 1000], [0.1, 0.1, 0.1]),
    ("constant", {}, [7], [0.1]),
    # cosine: 0.1 (1 + cos(pi t / T)) / 2.
    ("cosine", {"total_steps": 100}, [0, 25, 50, 100, 150],
     [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.0, 0.0]),
    # exponential: 0.1 * 0.1^(t / T).
    ("exponential", {"total_steps": 100}, [0, 50, 100], [0.1, 0.1 * 0.1 ** 0.5, 0.01]),
    ("step", {"total_steps": 100}, [0, 49, 50, 74, 75, 99], [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3]),
    ("step", {"total_steps": 100, "boundaries": [10], "decay_rate": 0.5}, [9, 10], [0.1, 0.05]),
    # warmup_cosine: linear 0 -> 0.1 over 10 steps, then cosine over the remaining 90.
    ("warmup_cosine", {"total_steps": 100}, [0, 5, 10, 55, 100],
     [0.0, 0.05, 0.1, 0.05, 0.0]),
    ("warmup_cosine", {"total_steps": 100, "warmup_steps": 20}, [10, 20], [0.05, 0.1]),
])
def test_schedule_values(schedule, kwargs, steps, values):
    fn = optim.make_schedule(0.1, schedule, **kwargs)
    got = [float(fn(t)) for t in steps]
    # float32 evaluation of cos / pow: 1e-6 relative, 1e-8 absolute at the zeros.
    np.testing.assert_allclose(got, values, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------ bad inputs

def _quad(x):
    return jnp.sum(x ** 2)


BAD_GD = [
    # (fn, x0, learning_rate, steps, momentum), error, message fragment
    ((_quad, 1.0, 0.0, 10, 0.0), ValueError, "`learning_rate` must be > 0, got 0.0"),
    ((_quad, 1.0, -0.1, 10, 0.0), ValueError, "`learning_rate` must be > 0, got -0.1"),
    ((_quad, 1.0, 0.1, 0, 0.0), ValueError, "`steps` must be > 0, got 0"),
    ((_quad, 1.0, 0.1, 2.5, 0.0), TypeError, "`steps` must be an int"),
    ((_quad, 1.0, 0.1, 5, 1.0), ValueError, r"`momentum` must lie in \[0.0, 1.0\)"),
    ((_quad, float("nan"), 0.1, 5, 0.0), ValueError, "`x0` contains 1 NaN"),
    ((_quad, jnp.array([1, 2]), 0.1, 5, 0.0), TypeError, "`x0` must have a floating dtype"),
    ((lambda x: x * 2, jnp.ones(3), 0.1, 5, 0.0), ValueError,
     r"`fn` must return a float scalar \(shape \(\)\), got shape \(3,\)"),
    ((lambda x: x @ jnp.ones(4), jnp.ones(3), 0.1, 5, 0.0), TypeError,
     r"`fn` could not be evaluated on an array of shape \(3,\)"),
    (("x**2", 1.0, 0.1, 5, 0.0), TypeError, "`fn` must be a callable"),
]


@pytest.mark.parametrize("args,err,match", BAD_GD)
def test_gradient_descent_bad_inputs(args, err, match):
    fn, x0, learning_rate, steps, momentum = args
    with pytest.raises(err, match=match):
        optim.gradient_descent(fn, x0, learning_rate=learning_rate, steps=steps,
                               momentum=momentum)


def test_gradient_descent_many_bad_inputs():
    with pytest.raises(ValueError, match="`x0s` is empty"):
        optim.gradient_descent_many(_quad, jnp.zeros((0, 2)), learning_rate=0.1, steps=3)


BAD_OPT = [
    (("lbfgs", 0.1), {}, ValueError, r"`name` must be one of .*got 'lbfgs'"),
    (("sgd", 0.0), {}, ValueError, "`learning_rate` must be > 0, got 0.0"),
    (("sgd", "0.1"), {}, TypeError, "`learning_rate` must be a number"),
    (("momentum", 0.1), {"momentum": 1.0}, ValueError, r"`momentum` must lie in \[0.0, 1.0\)"),
    (("momentum", 0.1), {"momentum": -0.1}, ValueError, r"`momentum` must lie in \[0.0, 1.0\)"),
    (("adam", 0.1), {"momentum": 0.9}, ValueError, "`momentum` does not apply to 'adam'"),
    (("adam", 0.1), {"nesterov": True}, ValueError, "`nesterov` does not apply to 'adam'"),
    (("sgd", 0.1), {"nesterov": True}, ValueError, "`nesterov=True` needs `momentum`"),
    (("sgd", 0.1), {"weight_decay": -1.0}, ValueError, "`weight_decay` must be >= 0"),
    (("sgd", 0.1), {"schedule": "cosine"}, ValueError, "schedule 'cosine' needs `total_steps`"),
    (("sgd", 0.1), {"schedule": "linear", "total_steps": 10}, ValueError,
     r"`schedule` must be one of .*got 'linear'"),
    (("sgd", optax.constant_schedule(0.1)), {"schedule": "cosine"}, ValueError,
     "`learning_rate` is already a schedule"),
    (("sgd", 0.1), {"schedule": "step", "total_steps": 10, "boundaries": [5, 3]}, ValueError,
     "`boundaries` must be strictly increasing"),
    (("sgd", 0.1), {"schedule": "exponential", "total_steps": 10, "decay_rate": 0.0},
     ValueError, r"`decay_rate` must lie in \(0.0, 1.0\]"),
    (("sgd", 0.1), {"schedule": "warmup_cosine", "total_steps": 10, "warmup_steps": 10},
     ValueError, r"`warmup_steps` must lie in \[0, total_steps = 10\)"),
    (("sgd", 0.1), {"schedule": "cosine", "total_steps": 10.0}, TypeError,
     "`total_steps` must be an int"),
    (("adam", 0.1), {"b2": 1.0}, ValueError, r"`b2` must lie in \[0.0, 1.0\)"),
]


@pytest.mark.parametrize("args,kwargs,err,match", BAD_OPT)
def test_make_optimizer_bad_inputs(args, kwargs, err, match):
    with pytest.raises(err, match=match):
        optim.make_optimizer(*args, **kwargs)
