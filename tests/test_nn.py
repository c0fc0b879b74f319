"""Tests for jaxlearn.nn: gradients by finite differences, convolutions against
``lax.conv_general_dilated``, shapes, dropout statistics, determinism and bad inputs.

XLA compilation dominates the run time on CPU, so random test data and parameters come from NumPy
(params drawn for the shapes ``jax.eval_shape(init)`` reports), shapes are checked without
running anything (``jax.eval_shape``), and a representative part of each grid runs by default;
the rest of the grid (second-order gradients of every layer, every stride x padding) is marked
``slow``.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from jaxlearn import nn

KEY = jax.random.key(0)

# check_grads runs in float64 with a central-difference step of 1e-6: the truncation error is
# ~eps^2 |f'''| ~ 1e-12 and the round-off ~1e-16 / eps ~ 1e-10, so 1e-6 is tight yet safe. The
# small step also keeps the finite differences of ReLU networks off the kinks (a pre-activation
# would have to lie within 1e-6 of 0).
GRAD_TOL = 1e-6
GRAD_EPS = 1e-6
# Our im2col convolution and XLA's convolution sum the same <= 5 * 5 * 3 products in a different
# order: in float64 they differ by ~1e-15, so 1e-10 flags any real indexing mistake.
CONV_TOL = 1e-10


def _normal(seed: int, shape, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _shapes(layer: nn.Layer, input_shape):
    """``(output_shape, params as ShapeDtypeStructs)`` from ``init``, without running it."""
    out_shapes = []

    def params_only(key):
        out_shape, params = layer.init(key, input_shape)
        out_shapes.append(out_shape)
        return params

    params = jax.eval_shape(params_only, KEY)
    return out_shapes[0], params


def _random_params(layer: nn.Layer, input_shape, seed: int, dtype=np.float64):
    """Params of the right structure and shapes, drawn N(0, 0.5^2) by NumPy (no compilation)."""
    _, structs = _shapes(layer, input_shape)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(dtype),
                                  structs)


# Layers with the example shape they are initialised for: used by the gradient and shape tests.
LAYERS = {
    "dense": (nn.dense(4), (5,)),
    "dense_no_bias_3d": (nn.dense(3, use_bias=False, w_init="torch"), (2, 5)),
    "conv1d_stride2_pad1": (nn.conv1d(3, 3, stride=2, padding=1), (9, 2)),
    "conv1d_same": (nn.conv1d(2, 4, padding="SAME", w_init="glorot_normal"), (7, 2)),
    "conv2d_same": (nn.conv2d(3, (3, 2), stride=(2, 1), padding="SAME"), (6, 5, 2)),
    "conv2d_pairs": (nn.conv2d(2, 3, padding=((1, 0), (0, 2)), w_init="torch"), (5, 5, 1)),
    "residual": (nn.residual(nn.serial(nn.dense(5), nn.tanh)), (5,)),
    "serial": (nn.serial(nn.dense(6), nn.relu, nn.dense(2)), (4,)),
    "flatten": (nn.flatten(), (3, 4)),
    "reshape": (nn.reshape((4, 3)), (12,)),
    **{f"mlp_{name}": (nn.mlp((6, 6), 3, activation=name, residual=True), (4,))
       for name in nn.ACTIVATIONS},
    # Stochastic layers: applied with train=True and a fixed key, which makes them deterministic.
    "dropout": (nn.dropout(0.3), (6,)),
    "mlp_dropout": (nn.mlp((6,), 2, activation="tanh", dropout=0.5), (4,)),
}
STOCHASTIC = ("dropout", "mlp_dropout")
# First-order checks of these run by default; every layer to second order is marked slow.
FAST_GRADS = ("dense", "conv1d_stride2_pad1", "mlp_gelu", "dropout")


def _apply_for_grads(name: str):
    layer, _ = LAYERS[name]
    if name in STOCHASTIC:
        return lambda params, x: layer.apply(params, x, key=jax.random.key(7), train=True)
    return layer.apply


def _check_layer_grads(name: str, order: int):
    layer, shape = LAYERS[name]
    apply = jax.jit(_apply_for_grads(name))
    with jax.enable_x64(True):
        params = _random_params(layer, shape, seed=1)
        x = _normal(2, (2, *shape), np.float64)
        if jax.tree.leaves(params):
            check_grads(apply, (params, x), order=order, modes=("fwd", "rev"),
                        atol=GRAD_TOL, rtol=GRAD_TOL, eps=GRAD_EPS)
        else:  # parameter-free: differentiate with respect to the input only
            check_grads(lambda x: apply(params, x), (x,), order=order, modes=("fwd", "rev"),
                        atol=GRAD_TOL, rtol=GRAD_TOL, eps=GRAD_EPS)


# ------------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", FAST_GRADS)
def test_first_order_gradients_match_finite_differences(name):
    _check_layer_grads(name, order=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LAYERS))
def test_second_order_gradients_match_finite_differences_every_layer(name):
    _check_layer_grads(name, order=2)


# ---------------------------------------------------------------- convolution against lax

def _lax_padding(padding, n_spatial: int):
    if isinstance(padding, str):
        return padding
    if isinstance(padding, int):
        return [(padding, padding)] * n_spatial
    if n_spatial == 1:
        return [padding]
    return [(p, p) if isinstance(p, int) else p for p in padding]


def _compare_with_lax(make_layer, x_shape, stride, padding, dimension_numbers):
    """Both implementations of the layer (``make_layer(impl)``) against ``lax`` computed here
    from the test's own padding: values and gradients w.r.t. params and input, in one program."""
    n_spatial = len(x_shape) - 2
    pads = _lax_padding(padding, n_spatial)
    layers = {impl: make_layer(impl) for impl in ("im2col", "xla")}

    def reference(params, x):
        y = lax.conv_general_dilated(x, params["w"], stride, pads,
                                     dimension_numbers=dimension_numbers)
        return y + params["b"].reshape((1,) * (y.ndim - 1) + (-1,))

    @jax.jit
    def values_and_grads(params, x, cotangent):
        def both(fn):
            grads = jax.grad(lambda p, x: jnp.sum(fn(p, x) * cotangent), argnums=(0, 1))
            return fn(params, x), grads(params, x)

        return {impl: both(layer.apply) for impl, layer in layers.items()}, both(reference)

    with jax.enable_x64(True):
        params = _random_params(layers["im2col"], x_shape[1:], seed=3)
        x = _normal(4, x_shape, np.float64)
        ref_shape = jax.eval_shape(reference, params, x).shape
        # A random cotangent so that every output entry enters the gradients differently.
        cotangent = _normal(5, ref_shape, np.float64)
        ours, (ref, ref_grads) = values_and_grads(params, x, cotangent)
    for impl, (values, grads) in ours.items():
        assert values.shape == ref.shape, impl
        np.testing.assert_allclose(values, ref, rtol=CONV_TOL, atol=CONV_TOL, err_msg=impl)
        chex.assert_trees_all_close(grads, ref_grads, rtol=CONV_TOL, atol=CONV_TOL)


# (kernel_size, c_in, c_out) cycles through the stride x padding grid so that every kernel size
# and channel count meets several strides and paddings. The cases marked fast cover every
# stride, every padding form and every kernel size; the whole grid is marked slow.
_KERNELS_CHANNELS = [(1, 1, 1), (3, 2, 4), (5, 3, 2), (4, 1, 3)]
_FAST_CONV1D = {(2, "SAME"), (3, "VALID"), (1, 2), (3, (0, 2))}
_CONV1D_CASES = [
    pytest.param(stride, padding, *_KERNELS_CHANNELS[(i + j) % len(_KERNELS_CHANNELS)],
                 marks=() if (stride, padding) in _FAST_CONV1D else pytest.mark.slow)
    for i, stride in enumerate((1, 2, 3))
    for j, padding in enumerate(("SAME", "VALID", 0, 2, (0, 2), (3, 1)))
]


@pytest.mark.parametrize(("stride", "padding", "kernel_size", "c_in", "c_out"), _CONV1D_CASES)
def test_conv1d_equals_lax_conv_values_and_gradients(stride, padding, kernel_size, c_in, c_out):
    def make_layer(impl):
        return nn.conv1d(c_out, kernel_size, stride=stride, padding=padding, impl=impl)
    _compare_with_lax(make_layer, (2, 11, c_in), (stride,), padding, ("NWC", "WIO", "NWC"))


@pytest.mark.parametrize(("stride", "padding", "kernel_size", "c_in", "c_out"), [
    (2, "SAME", (3, 2), 1, 2),
    (2, ((0, 2), (1, 0)), (3, 2), 2, 3),
    pytest.param(1, "SAME", 3, 2, 3, marks=pytest.mark.slow),
    pytest.param(1, "VALID", (2, 3), 3, 2, marks=pytest.mark.slow),
    pytest.param((2, 3), "VALID", 3, 2, 2, marks=pytest.mark.slow),
    pytest.param(1, 1, 3, 1, 4, marks=pytest.mark.slow),
    pytest.param((1, 2), ((2, 1), (0, 0)), 4, 1, 1, marks=pytest.mark.slow),
    pytest.param(3, (2, 1), (1, 5), 2, 2, marks=pytest.mark.slow),  # ints: one per axis
])
def test_conv2d_equals_lax_conv_values_and_gradients(stride, padding, kernel_size, c_in, c_out):
    def make_layer(impl):
        return nn.conv2d(c_out, kernel_size, stride=stride, padding=padding, impl=impl)
    strides = (stride, stride) if isinstance(stride, int) else stride
    _compare_with_lax(make_layer, (2, 8, 7, c_in), strides, padding, ("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize(("backend", "impl", "uses_xla_conv"), [
    ("cpu", "auto", False), ("gpu", "auto", True), ("tpu", "auto", True),
    ("cpu", "xla", True), ("gpu", "im2col", False),
])
def test_conv_impl_follows_the_backend_unless_given(monkeypatch, backend, impl, uses_xla_conv):
    # The choice is made when the layer is applied (at trace time), from jax.default_backend().
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    for layer, shape in ((nn.conv1d(2, 3, impl=impl), (6, 1)),
                         (nn.conv2d(2, 3, stride=2, impl=impl), (6, 5, 1))):
        _, params = _shapes(layer, shape)
        jaxpr = jax.make_jaxpr(layer.apply)(params, jax.ShapeDtypeStruct((2, *shape), "float32"))
        assert ("conv_general_dilated" in str(jaxpr)) is uses_xla_conv
    assert nn.conv_impl(impl) == ("xla" if uses_xla_conv else "im2col")


# ------------------------------------------------------------------------------------ shapes

@pytest.mark.parametrize("name", list(LAYERS))
def test_init_output_shape_equals_apply_output_shape(name):
    layer, shape = LAYERS[name]
    out_shape, params = _shapes(layer, shape)
    x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
    for train in (False, True):
        out = jax.eval_shape(lambda p, x, t=train: layer.apply(p, x, key=KEY, train=t), params, x)
        assert out.shape == (3, *out_shape)
        assert out.dtype == jnp.float32


def _mnist1d_cnn_layers() -> list[nn.Layer]:
    return [nn.reshape((40, 1)),
            nn.conv1d(25, 5, stride=2, padding=1), nn.relu,
            nn.conv1d(25, 3, stride=2, padding=1), nn.relu,
            nn.conv1d(25, 3, stride=2, padding=1), nn.relu,
            nn.flatten(), nn.dense(10)]


def test_mnist1d_reference_cnn_shapes_and_parameter_count():
    layers = _mnist1d_cnn_layers()
    out_shape, params = _shapes(nn.serial(*layers), (40,))
    assert out_shape == (10,)
    # PyTorch's L_out = floor((L + 2 p - k) / s) + 1: 40 -> 19 -> 10 -> 5.
    length = 40
    for k in (5, 3, 3):
        length = (length + 2 - k) // 2 + 1
    assert length == 5
    conv_shape, _ = _shapes(nn.serial(*layers[:7]), (40,))
    assert conv_shape == (5, 25)
    assert params[-1]["w"].shape == (125, 10)  # nn.Linear(125, 10) in the reference model
    # Conv1d(1, 25, 5) + 2 x Conv1d(25, 25, 3) + Linear(125, 10), weights and biases:
    assert nn.count_params(params) == (5 * 25 + 25) + 2 * (3 * 25 * 25 + 25) + (125 * 10 + 10)
    assert nn.count_params(params) == 5210
    out = jax.eval_shape(nn.serial(*layers).apply, params, jax.ShapeDtypeStruct((4, 40), "float32"))
    assert out.shape == (4, 10)


# ----------------------------------------------------------------------------- references

def test_dense_equals_numpy():
    layer = nn.dense(3)
    params = _random_params(layer, (4,), seed=5, dtype=np.float32)
    x = _normal(6, (5, 4))
    expected = x.astype(np.float64) @ params["w"].astype(np.float64) + params["b"]
    # float32 dot of 4 terms of size ~1: error ~4 * 6e-8.
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-6)


def test_residual_mlp_equals_hand_written_forward_pass():
    model = nn.mlp((6, 6), 3, activation="tanh", residual=True)
    params = _random_params(model, (4,), seed=7, dtype=np.float32)
    (first, _), (second, _) = params[0], params[1]
    last = params[2]
    x = _normal(8, (5, 4))
    h1 = np.tanh(x @ first["w"] + first["b"])  # widths 4 -> 6 differ: no skip
    h2 = h1 + np.tanh(h1 @ second["w"] + second["b"])  # widths 6 -> 6: skip connection
    expected = h2 @ last["w"] + last["b"]
    # The same float32 arithmetic in another order: errors of a few 1e-7 relative.
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- dropout

def test_dropout_is_identity_at_test_time():
    x = _normal(9, (4, 6))
    layer = nn.dropout(0.5)
    np.testing.assert_array_equal(layer.apply((), x), x)
    np.testing.assert_array_equal(layer.apply((), x, key=KEY, train=False), x)


@pytest.mark.parametrize("rate", [pytest.param(0.1, marks=pytest.mark.slow), 0.5,
                                  pytest.param(0.8, marks=pytest.mark.slow)])
def test_dropout_is_unbiased_and_drops_the_right_fraction(rate):
    n_keys = 20_000
    x = np.random.default_rng(10).uniform(0.5, 2.0, size=(1, 16)).astype(np.float32)  # no zeros
    layer = nn.dropout(rate)
    keys = jax.random.split(jax.random.key(5), n_keys)
    outs = jax.jit(jax.vmap(lambda k: layer.apply((), x, key=k, train=True)))(keys)
    outs = np.asarray(outs, np.float64)
    # Each output is x / (1 - rate) * Bernoulli(1 - rate): mean x, variance x^2 rate / (1 - rate).
    # The mean over n_keys keys has standard error |x| sqrt(rate / ((1 - rate) n_keys)); allow 5
    # standard errors per entry (probability of a false alarm over 16 entries ~ 1e-5).
    standard_error = np.abs(x) * math.sqrt(rate / ((1 - rate) * n_keys))
    assert np.all(np.abs(outs.mean(axis=0) - x) < 5 * standard_error)
    # The fraction of zeros is a mean of 16 n_keys Bernoulli(rate): standard error
    # sqrt(rate (1 - rate) / (16 n_keys)) <= 9e-4; again 5 standard errors.
    dropped = outs == 0.0
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / dropped.size)
    # Survivors are scaled exactly by 1 / (1 - rate) (float32 division: rtol 1e-6).
    kept = np.broadcast_to(x.astype(np.float64) / (1 - rate), outs.shape)[~dropped]
    np.testing.assert_allclose(outs[~dropped], kept, rtol=1e-6)


def test_dropout_needs_a_key_at_train_time():
    with pytest.raises(ValueError, match="dropout: `key` is required when `train=True`"):
        nn.dropout(0.5).apply((), np.ones((2, 3), np.float32), train=True)
    # Through serial too: the missing key reaches the dropout layer.
    model = nn.serial(nn.flatten(), nn.dropout(0.5))
    with pytest.raises(ValueError, match="`key` is required"):
        model.apply(((), ()), np.ones((2, 2), np.float32), train=True)


@pytest.mark.parametrize(("rate", "error"), [
    (-0.1, ValueError), (1.0, ValueError), (1.5, ValueError), ("0.5", TypeError),
    (float("nan"), ValueError),
])
def test_dropout_rate_outside_unit_interval_raises(rate, error):
    with pytest.raises(error, match="`rate`"):
        nn.dropout(rate)


# ---------------------------------------------------------------------------- determinism

# A small model with two kinds of random init and a dropout layer. (Random number generation
# compiles slowly on CPU, so the model is kept to few distinct shapes.)
_SMALL = nn.serial(nn.dense(4, w_init="torch"), nn.relu, nn.dropout(0.5), nn.dense(2))


def test_same_key_gives_bitwise_identical_init_and_dropout_jit_or_not():
    _, params = _SMALL.init(jax.random.key(11), (3,))
    _, params_again = _SMALL.init(jax.random.key(11), (3,))
    _, params_jit = jax.jit(_SMALL.init, static_argnums=1)(jax.random.key(11), (3,))
    _, params_other = _SMALL.init(jax.random.key(12), (3,))
    chex.assert_trees_all_equal(params, params_again)
    chex.assert_trees_all_equal(params, params_jit)  # random bits and their scaling: bitwise
    chex.assert_trees_all_equal_structs(params, params_other)
    for a, d in zip(jax.tree.leaves(params), jax.tree.leaves(params_other)):
        assert not np.array_equal(a, d) or np.all(np.asarray(a) == 0)  # zero biases stay zero
    x = _normal(12, (8, 3))

    def apply(key, train):
        return _SMALL.apply(params, x, key=key, train=train)

    out = apply(jax.random.key(13), True)
    np.testing.assert_array_equal(out, apply(jax.random.key(13), True))
    assert not np.array_equal(out, apply(jax.random.key(14), True))
    np.testing.assert_array_equal(apply(jax.random.key(13), False), apply(None, False))
    jitted = jax.jit(apply, static_argnums=1)(jax.random.key(13), True)
    # XLA may fuse and reorder float32 arithmetic under jit: allow a few ulps of 1e-7 ...
    np.testing.assert_allclose(jitted, out, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(jitted == 0, out == 0)  # ... but the dropout mask is the same


# ------------------------------------------------------------------------------- bad inputs

def _apply_dense_40_to_41():
    params = {"w": np.zeros((40, 10), np.float32), "b": np.zeros(10, np.float32)}
    nn.dense(10).apply(params, np.ones((32, 41), np.float32))


def _apply_conv_wrong_channels():
    params = {"w": np.zeros((3, 2, 4), np.float32), "b": np.zeros(4, np.float32)}
    nn.conv1d(4, 3).apply(params, np.ones((5, 10, 3), np.float32))


@pytest.mark.parametrize(("call", "error", "match"), [
    (_apply_dense_40_to_41, ValueError,
     r"`x` has shape \(32, 41\) but the layer was initialised for 40 input features"),
    (_apply_conv_wrong_channels, ValueError, r"conv1d: `x` has shape \(5, 10, 3\) .*channels last"),
    (lambda: nn.activation("swish"), ValueError, "`activation` must be one of"),
    (lambda: nn.mlp((10,), 2, activation="softmax"), ValueError, "`activation` must be one of"),
    (lambda: nn.dense(10, w_init="xavier"), ValueError, "`w_init` must be one of"),
    (lambda: nn.conv1d(4, 3, w_init="kaiming"), ValueError, "`w_init` must be one of"),
    (lambda: nn.conv2d(4, 3, impl="cudnn"), ValueError, "`impl` must be one of"),
    (lambda: nn.dense(0), ValueError, "`out_features` must be > 0, got 0"),
    (lambda: nn.dense(10.0), TypeError, "`out_features` must be an int"),
    (lambda: nn.mlp((100, -1), 10), ValueError, r"`hidden\[1\]` must be > 0"),
    (lambda: nn.mlp((10,), 2, dropout=1.0), ValueError, r"`dropout` must lie in \[0.0, 1.0\)"),
    (lambda: nn.conv1d(4, 3, padding=-1).init(KEY, (10, 1)), ValueError,
     "`padding` must be >= 0, got -1"),
    (lambda: nn.conv1d(4, 3, padding=(-1, 2)).init(KEY, (10, 1)), ValueError,
     r"`padding` must be >= 0, got \(-1, 2\)"),
    (lambda: nn.conv1d(4, 3, padding="same").init(KEY, (10, 1)), ValueError,
     "`padding` must be one of"),
    (lambda: nn.conv1d(4, 3, padding=(1,)).init(KEY, (10, 1)), TypeError,
     r"`padding` must be 'SAME', 'VALID', an int >= 0 or a pair \(low, high\)"),
    (lambda: nn.conv1d(4, 3, padding=(True, 1)).init(KEY, (10, 1)), TypeError,
     r"`padding` must be 'SAME', 'VALID', an int >= 0 or a pair"),
    (lambda: nn.conv1d(4, 9).init(KEY, (5, 1)), ValueError,
     r"input size 5 \(padded 5\) is smaller than kernel_size 9"),
    (lambda: nn.conv2d(4, (3, 7), padding=1).init(KEY, (8, 4, 1)), ValueError,
     r"input size 4 \(padded 6\) is smaller than kernel_size 7"),
    (lambda: nn.conv1d(4, 2.5), TypeError, "`kernel_size` must be an int or a tuple of 1 ints"),
    (lambda: nn.conv2d(4, (3, 3, 3)), TypeError, "`kernel_size` must be an int or a tuple of 2"),
    (lambda: nn.conv1d(4, 0), ValueError, "`kernel_size` must be >= 1"),
    (lambda: nn.conv1d(4, 3, stride=0), ValueError, "`stride` must be >= 1"),
    (lambda: nn.conv1d(0, 3), ValueError, "`out_channels` must be > 0"),
    (lambda: nn.conv1d(4, 3).init(KEY, (40,)), ValueError,
     r"conv1d: `input_shape` must have 2 dimensions .*got \(40,\)"),
    (lambda: nn.dense(10).init(KEY, 40), TypeError, "`input_shape` must be a tuple of positive"),
    (lambda: nn.dense(10).init(KEY, (0,)), TypeError, "`input_shape` must be a tuple of positive"),
    (lambda: nn.residual(nn.flatten()).init(KEY, (2, 3)), ValueError,
     r"maps shape \(2, 3\) to \(6,\); a skip connection needs equal shapes"),
    (lambda: nn.reshape((7,)).init(KEY, (40,)), ValueError,
     r"cannot reshape examples of shape \(40,\) to \(7,\)"),
    (lambda: nn.dropout(0.5).apply((), np.ones((2, 3), np.float32), key=0, train=True),
     TypeError, "`key` must be a jax.random key"),
    (lambda: nn.serial(), ValueError, "give at least one layer"),
    (lambda: nn.serial(nn.dense(3), "relu"), TypeError, "argument 1 must be a Layer, got str"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_activations_and_initialisers_by_name_or_callable_are_bitwise_the_same():
    # Issue 16: a name and the function it names build the same model (the default initialiser
    # follows the function too: He for ReLU given as jax.nn.relu).
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6)), jnp.float32)
    key = jax.random.key(0)
    by_name = nn.mlp((8, 8), 3, activation="relu", residual=True, dropout=0.1)
    by_fn = nn.mlp((8, 8), 3, activation=jax.nn.relu, residual=True, dropout=0.1)
    (_, p_name), (_, p_fn) = by_name.init(key, (6,)), by_fn.init(key, (6,))
    jax.tree.map(np.testing.assert_array_equal, p_name, p_fn)
    np.testing.assert_array_equal(by_name.apply(p_name, x), by_fn.apply(p_fn, x))
    init = jax.nn.initializers.he_normal(in_axis=-2, out_axis=-1)
    (_, a), (_, b) = nn.dense(5, w_init="he_normal").init(key, (6,)), nn.dense(5, w_init=init).init(
        key, (6,))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    silu = nn.activation(jax.nn.silu)
    np.testing.assert_array_equal(silu.apply((), x), jax.nn.silu(x))
    with pytest.raises(ValueError, match="`activation` must be one of"):
        nn.mlp((4,), 2, activation="swish")
    with pytest.raises(ValueError, match="`w_init` must be one of"):
        nn.dense(3, w_init="he")
