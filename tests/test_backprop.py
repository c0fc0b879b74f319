"""Tests for jaxlearn.backprop: the hand-written chain rule against jax.grad and finite
differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxlearn import backprop

ACTIVATIONS = backprop.MLP1_ACTIVATIONS
N_IN, N_HIDDEN, N_OUT, BATCH = 5, 7, 3, 11


def _problem(loss, target_kind="labels", seed=0):
    """float64 params, inputs and targets (call inside jax.enable_x64). Data from numpy's RNG:
    drawing it with jax.random would compile a sampler per shape."""
    rng = np.random.default_rng(seed)
    params = backprop.mlp1_init(jax.random.key(seed), N_IN, N_HIDDEN, N_OUT, dtype=jnp.float64)
    # Non-zero biases so that every term of the backward pass is exercised.
    params = {**params, "b1": np.linspace(-0.5, 0.5, N_HIDDEN), "b2": np.array([0.1, -0.2, 0.3])}
    x = rng.normal(size=(BATCH, N_IN))
    if loss == "mse":
        y = rng.normal(size=(BATCH, N_OUT))
    elif target_kind == "labels":
        y = rng.integers(0, N_OUT, size=BATCH)
    else:
        y = rng.dirichlet(np.ones(N_OUT), size=BATCH)
    return params, x, y


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# Every activation with both losses; soft (probability) targets once, as they share G_o's code.
CASES = [(act, loss, "labels") for act in ACTIVATIONS for loss in backprop.MLP1_LOSSES]


@pytest.mark.parametrize("activation,loss,target_kind",
                         [*CASES, ("tanh", "softmax_cross_entropy", "probabilities")])
def test_hand_backprop_equals_jax_grad(activation, loss, target_kind):
    with jax.enable_x64(True):
        params, x, y = _problem(loss, target_kind)
        out, cache = backprop.mlp1_forward(params, x, activation=activation)
        grads = backprop.mlp1_backward(params, cache, y, activation=activation, loss=loss)
        auto = jax.grad(backprop.mlp1_loss)(params, x, y, activation=activation, loss=loss)
        assert out.dtype == jnp.float64 and grads["w1"].dtype == jnp.float64
        for name in ("w1", "b1", "w2", "b2"):
            assert grads[name].shape == params[name].shape
            # The bar: 1e-6 relative in float64 (observed ~1e-16: same math, reordered).
            assert _rel_err(grads[name], auto[name]) < 1e-6, name
            assert np.linalg.norm(auto[name]) > 1e-3  # a zero gradient would prove nothing


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", backprop.MLP1_LOSSES)
def test_mlp1_loss_passes_finite_difference_check(activation, loss):
    with jax.enable_x64(True):
        params, x, y = _problem(loss, seed=1)

        def f(p):
            return backprop.mlp1_loss(p, x, y, activation=activation, loss=loss)

        # Central differences in float64 with check_grads' step eps = 1e-4: the truncation
        # error O(eps^2 |f'''|) ~ 1e-8, so 1e-5 leaves a wide margin yet catches any wrong
        # term (those are O(1)). ReLU is piecewise linear: the random inputs keep every h_pre
        # far from its kink compared with eps.
        check_grads(f, (params,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_forward_cache_holds_the_intermediate_values():
    params = {"w1": jnp.array([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]]),
              "b1": jnp.array([0.0, 1.0, -1.0]),
              "w2": jnp.array([[1.0], [2.0], [-3.0]]), "b2": jnp.array([0.5])}
    x = jnp.array([[1.0, 1.0]])
    out, cache = backprop.mlp1_forward(params, x, activation="relu")
    # h_pre = [1 + 2, -1 + 1, 0.5 - 1 - 1] = [3, 0, -1.5]; relu -> [3, 0, 0]; out = 3 + 0.5.
    np.testing.assert_allclose(cache.h_pre, [[3.0, 0.0, -1.5]])
    np.testing.assert_allclose(cache.h, [[3.0, 0.0, 0.0]])
    np.testing.assert_allclose(out, [[3.5]])
    np.testing.assert_allclose(cache.out, out)
    # MSE to y = 1.5: G_o = 2 (3.5 - 1.5) / 1 = 4; G_2 = h^T G_o = [12, 0, 0];
    # G_1 = G_o W2^T * relu'(h_pre) = [4, 8, -12] * [1, 0, 0] = [4, 0, 0]; dW1 = x^T G_1.
    g = backprop.mlp1_backward(params, cache, jnp.array([[1.5]]), activation="relu", loss="mse")
    np.testing.assert_allclose(g["w2"], [[12.0], [0.0], [0.0]])
    np.testing.assert_allclose(g["b2"], [4.0])
    np.testing.assert_allclose(g["b1"], [4.0, 0.0, 0.0])
    np.testing.assert_allclose(g["w1"], [[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])


def test_init_shapes_and_determinism():
    with jax.enable_x64(True):  # the sizes and dtype of _problem: the compiled init is reused
        a = backprop.mlp1_init(jax.random.key(0), N_IN, N_HIDDEN, N_OUT, dtype=jnp.float64)
        b = backprop.mlp1_init(jax.random.key(0), N_IN, N_HIDDEN, N_OUT, dtype=jnp.float64)
        c = backprop.mlp1_init(jax.random.key(1), N_IN, N_HIDDEN, N_OUT, dtype=jnp.float64)
    assert {k: v.shape for k, v in a.items()} == {"w1": (5, 7), "b1": (7,), "w2": (7, 3),
                                                 "b2": (3,)}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == jnp.float64
    assert not np.array_equal(a["w1"], c["w1"])
    np.testing.assert_array_equal(a["b1"], 0.0)
    # Glorot uniform bounds sqrt(6 / (fan_in + fan_out)).
    assert np.max(np.abs(a["w1"])) <= np.sqrt(6 / 12)
    assert np.max(np.abs(a["w2"])) <= np.sqrt(6 / 10)


# ------------------------------------------------------------------------------ bad inputs

P = {"w1": np.ones((3, 4), np.float32), "b1": np.zeros(4, np.float32),
     "w2": np.ones((4, 2), np.float32), "b2": np.zeros(2, np.float32)}
XB = np.ones((5, 3), np.float32)
_, CACHE = backprop.mlp1_forward(P, XB, activation="tanh")
LABELS = np.array([0, 1, 0, 1, 1])

BAD = [
    (backprop.mlp1_init, (jax.random.key(0), 0, 4, 2), {}, ValueError, "`n_in` must be > 0"),
    (backprop.mlp1_init, (jax.random.key(0), 3, 4, 2), {"dtype": jnp.int32}, TypeError,
     "`dtype` must be a float dtype"),
    (backprop.mlp1_forward, (P, np.ones((5, 4), np.float32)), {"activation": "tanh"}, ValueError,
     r"`x` has shape \(5, 4\) but `params\['w1'\]` expects 3 input features"),
    (backprop.mlp1_forward, (P, XB), {"activation": "gelu"}, ValueError,
     r"`activation` must be one of \['relu', 'sigmoid', 'tanh'\], got 'gelu'"),
    (backprop.mlp1_forward, ({**P, "b1": np.zeros(5, np.float32)}, XB), {"activation": "tanh"},
     ValueError, "`params` shapes do not chain"),
    (backprop.mlp1_forward, ({"w1": P["w1"]}, XB), {"activation": "tanh"}, TypeError,
     "`params` must be a dict with keys"),
    (backprop.mlp1_backward, (P, CACHE, LABELS + 1), {"activation": "tanh",
                                                      "loss": "softmax_cross_entropy"},
     ValueError, "`y` has label 2 but `n_classes` is 2"),
    (backprop.mlp1_backward, (P, CACHE, LABELS), {"activation": "tanh", "loss": "mse"},
     TypeError, "`y` must have a floating dtype"),
    (backprop.mlp1_backward, (P, CACHE, np.ones((5, 3), np.float32)),
     {"activation": "tanh", "loss": "mse"}, ValueError,
     r"`y` has shape \(5, 3\) but loss 'mse' needs targets"),
    (backprop.mlp1_backward, (P, CACHE, LABELS[:4]), {"activation": "tanh",
                                                      "loss": "softmax_cross_entropy"},
     ValueError, r"`y` has shape \(4,\) but `x` has 5 samples"),
    (backprop.mlp1_backward, (P, CACHE, LABELS), {"activation": "tanh", "loss": "hinge"},
     ValueError, "`loss` must be one of"),
    (backprop.mlp1_backward, (P, (XB,), LABELS), {"activation": "tanh",
                                                  "loss": "softmax_cross_entropy"},
     TypeError, "`cache` must be the Mlp1Cache"),
    (backprop.mlp1_loss, (P, np.where(np.eye(5, 3) > 0, np.inf, XB), LABELS),
     {"activation": "tanh", "loss": "softmax_cross_entropy"}, ValueError,
     "`x` contains 3 NaN or inf"),
]


@pytest.mark.parametrize("fn,args,kwargs,err,match", BAD)
def test_bad_inputs(fn, args, kwargs, err, match):
    with pytest.raises(err, match=match):
        fn(*args, **kwargs)
