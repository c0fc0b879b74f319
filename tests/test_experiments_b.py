"""The lecture's middle experiments (universal approximation, backprop, losses, ridge, dropout) run
in quick mode with their quick seeds: each claim must hold or stay inconclusive (never "does not
hold"), its evidence must be checks over seeds with a stated threshold source, and its key numbers
must lie in the range the full runs measured (wide enough for every seed, narrow enough to catch a
broken model). Two tricks the experiments rely on (masked narrow networks, full-batch steps through
jl.fit) are checked against the direct computation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from experiment_checks import check_outcome, check_progress, quick_run

import jaxlearn as jl
from experiments import backprop, dropout, losses, ridge, universal_approximation

# ------------------------------------------------------------------- the tricks, checked directly

@pytest.mark.slow
def test_masked_wide_network_is_the_narrow_network():
    widths = (1, 3, 8)
    params, masks = universal_approximation._init_bank(widths, (0,))
    x = jnp.linspace(-1.0, 1.0, 33)[:, None]
    wide = universal_approximation._model("tanh", 8)

    @jax.jit
    def wide_out_and_grads(p, m):
        def out(q):
            return wide.apply(jax.tree.map(jnp.multiply, q, m), x)
        return out(p), jax.grad(lambda q: jnp.sum(out(q) ** 2))(p)

    for j, width in enumerate(widths):
        p = jax.tree.map(lambda leaf, j=j: leaf[j], params)
        m = jax.tree.map(lambda leaf, j=j: leaf[j], masks)
        (hidden, _), out = p
        # The PyTorch init of a width-w layer: hidden (fan-in 1) in U(-1, 1), output in
        # U(-1/sqrt(w), 1/sqrt(w)); units past w are exactly zero.
        assert np.all(np.abs(hidden["w"][:, :width]) <= 1.0)
        assert np.all(np.abs(out["w"][:width]) <= 1.0 / np.sqrt(width) + 1e-7)
        assert np.abs(out["b"]).max() <= 1.0 / np.sqrt(width) + 1e-7
        assert not np.any(hidden["w"][:, width:]) and not np.any(out["w"][width:])
        # The masked wide network computes what the narrow network with the same weights
        # does (float32: sums in another order, so 1e-6 relative).
        narrow = universal_approximation._model("tanh", width)
        narrow_params = (({"w": hidden["w"][:, :width], "b": hidden["b"][:width]}, ()),
                         {"w": out["w"][:width], "b": out["b"]})
        wide_out, grads = wide_out_and_grads(p, m)
        np.testing.assert_allclose(wide_out, jax.jit(narrow.apply)(narrow_params, x),
                                   rtol=1e-6, atol=1e-6)
        # Masked units get a zero gradient, so Adam never moves them.
        (g_hidden, _), g_out = grads
        assert not np.any(g_hidden["w"][:, width:]) and not np.any(g_out["w"][width:])


@pytest.mark.slow
def test_whole_set_as_one_example_gives_full_batch_steps():
    # jl.fit with the training set repeated as K identical "examples" and batch_size=1 takes
    # exactly the full-batch Adam steps (float32 round-off only: 1e-6).
    x, y = jl.data.regression_1d(jax.random.key(0), 24, noise=0.1)
    model = jl.nn.mlp((5,), 1, activation="tanh")
    _, params = model.init(jax.random.key(1), (1,))
    steps, k = 6, 3
    result = jl.fit(lambda p, xb: model.apply(p, xb)[..., 0], params,
                    jnp.broadcast_to(x[None], (k, *x.shape)), jnp.broadcast_to(y[None], (k, 24)),
                    loss="mse", optimizer=optax.adam(0.05), key=jax.random.key(2), batch_size=1,
                    steps=steps)
    optimizer = optax.adam(0.05)
    state = optimizer.init(params)
    objective = jax.grad(lambda p: jnp.mean((model.apply(p, x)[:, 0] - y) ** 2))
    for _ in range(steps):
        updates, state = optimizer.update(objective(params), state, params)
        params = optax.apply_updates(params, updates)
    chex.assert_trees_all_close(result.params, params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("b, expected", [([1, 2, 3, 4], 1.0), ([4, 3, 2, 1], -1.0),
                                         ([1, 3, 2, 4], 0.8)])
def test_spearman(b, expected):
    # 1 - 6 sum d^2 / (n (n^2 - 1)): [1, 3, 2, 4] has sum d^2 = 2, so 1 - 12 / 60 = 0.8.
    assert universal_approximation._spearman(np.arange(4.0), np.asarray(b, float)) == \
        pytest.approx(expected)


# ------------------------------------------------------------------------------- quick runs

@pytest.mark.slow
def test_universal_approximation_quick():
    out, calls = quick_run("universal_approximation")
    check_outcome(out, "universal_approximation")
    check_progress(calls)
    n_seeds = universal_approximation.QUICK_FULL_SEEDS[0]
    sup = out.numbers["sup_error"]
    for activation in ("sigmoid", "tanh", "relu"):
        # One unit cannot follow sin(pi x) + x^2 / 2 (sup error ~1); 64 units get within 0.06.
        assert len(sup[activation][0]) == n_seeds
        assert all(0.9 <= e <= 1.5 for e in sup[activation][0])
        assert all(e <= 0.06 for e in sup[activation][-1])
    # Three checks per activation, all over seeds (no sanity check, no single measurement).
    assert [c.kind for c in out.checks] == ["interval"] * 9
    assert all(c.estimate.n == n_seeds and c.source for c in out.checks)
    assert [c.threshold for c in out.checks[:3]] == [0.1, universal_approximation.TOLERANCE, 0.0]


@pytest.mark.slow
def test_backprop_quick():
    out, calls = quick_run("backprop")
    check_outcome(out, "backprop")
    check_progress(calls)
    assert [c.kind for c in out.checks] == ["interval"] * 6
    assert all(c.estimate.n == backprop.QUICK_FULL_SEEDS[0] and c.source for c in out.checks)
    assert all("code-correctness" in c.source for c in out.checks[:4])
    errors = out.numbers["errors"]
    # Hand vs jax.grad: a few units of float64 epsilon; FD at h = 1e-5: ~1e-10.
    worst64 = max(max(e["hand_vs_grad"].values()) for e in errors["float64"].values())
    assert worst64 < 1e-14
    fd64 = max(max(e["fd_vs_grad"].values()) for e in errors["float64"].values())
    assert 1e-13 < fd64 < 1e-8
    # Truncation error ~ h^2 for the smooth activations (ReLU's kinks can break the power law).
    for config, slope in out.numbers["fd_slope_float64"].items():
        if not config.startswith("relu"):
            assert 1.7 < slope < 2.3, config


@pytest.mark.slow
def test_losses_quick():
    out, calls = quick_run("losses")
    check_outcome(out, "losses")
    check_progress(calls)
    n = out.numbers
    # The evidence: one check over seeds; the rest are labelled sanity checks of theorems.
    kinds = [c.kind for c in out.checks]
    assert kinds[0] == "interval" and set(kinds[1:]) == {"sanity"}
    assert out.checks[0].estimate.n == losses.QUICK_FULL_SEEDS[0] and out.checks[0].source
    assert all(c.source.startswith("theory") for c in out.checks[1:])
    # From a saturated wrong start (accuracy 0) BCE learns and MSE stalls in the same steps.
    sat = n["saturated_training"]
    assert all(a == 0.0 for a in sat["accuracy_at_start"])
    assert all(a >= 0.9 for a in sat["accuracy"]["bce"])
    assert all(a <= 0.5 for a in sat["accuracy"]["mse"])
    assert n["cross_entropy"]["binary_argmin_q"] == pytest.approx(losses.P_BINARY, abs=1e-3)
    # sigma'(-10) = 4.5e-5: MSE's gradient is 2 sigma'(-10) ~ 9.1e-5 of BCE's.
    assert n["mse_over_bce_at_z_-10"] == pytest.approx(2 * 4.54e-5, rel=0.01)
    assert n["softmax"]["entropy_at_T_max"] == pytest.approx(np.log(losses.N_CLASSES), abs=1e-3)


@pytest.mark.slow
def test_ridge_quick():
    out, calls = quick_run("ridge")
    check_outcome(out, "ridge")
    check_progress(calls)
    n = out.numbers
    assert [c.kind for c in out.checks] == ["interval"] * 3 + ["sanity"]
    assert all(c.source for c in out.checks)
    assert all(c.estimate.n == ridge.QUICK_FULL_SEEDS[0] for c in out.checks[:3])
    # The best lambda lies well inside [1e-8, 1e3] and its test MSE near the noise floor 0.09
    # (most seeds: a seed whose test points leave its training range can be far worse).
    assert all(1e-4 <= lam <= 100 for lam in n["best_lambda"])
    assert np.median(n["best_test_mse"]) <= 0.25 and min(n["best_test_mse"]) >= 0.09
    # Three decades of too much penalty underfit: test MSE near var(y) ~0.5 (sin(pi x) + noise).
    assert all(0.25 <= e <= 1.0 for e in n["test_mse_around_lambda_0"]["above"])
    # GD reaches the closed form; forgetting to divide lambda by n gives a visibly different one.
    assert max(n["gd"]["relative_diff"]["penalty"]) < 1e-3
    assert n["gd"]["max_abs_diff_if_penalty_not_divided_by_n"] > 0.1


@pytest.mark.slow
def test_dropout_quick():
    out, calls = quick_run("dropout")
    check_outcome(out, "dropout")
    check_progress(calls)
    n = out.numbers
    assert [c.kind for c in out.checks] == ["interval"] * 4 + ["sanity"]
    assert all(c.estimate.n == dropout.QUICK_FULL_SEEDS[0] for c in out.checks[:4])
    assert all(c.source for c in out.checks)
    # Unbiased masks: z^2 averages to 1 (0.9-1.1 over 3000 units per seed).
    assert all(0.9 <= z2 <= 1.1 for z2 in n["mean_z2"])
    # The plain MLP memorises each seed's 500 signals; both stay far below it on the test set.
    assert all(a >= 0.99 for a in n["train_accuracy"]["no dropout"])
    assert all(a >= 0.95 for a in n["train_accuracy"]["dropout"])
    assert all(0.25 <= a <= 0.5 for arm in dropout.MODELS for a in n["test_accuracy"][arm])
    assert n["test_accuracy"]["no dropout"][0] < n["test_accuracy"]["dropout"][0]
