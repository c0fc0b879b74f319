"""Layers as ``(init, apply)`` pairs of pure functions, composable with :func:`serial`.

A :class:`Layer` is a NamedTuple of two pure functions, as in ``jax.example_libraries.stax``::

    init(key, input_shape) -> (output_shape, params)
    apply(params, x, *, key=None, train=False) -> y

``input_shape`` is the shape of *one* example (no batch axis); ``apply`` takes a batch
``x`` of shape ``[batch, *input_shape]``. Params are plain pytrees (dicts and tuples of arrays).
Convolutions are channels-last: 1-D inputs are ``[batch, length, channels]`` and 2-D inputs
``[batch, height, width, channels]``, with kernels ``[k, c_in, c_out]`` and
``[kh, kw, c_in, c_out]`` (``lax.conv_general_dilated`` with ``("NWC", "WIO", "NWC")`` /
``("NHWC", "HWIO", "NHWC")``).

Example — the MNIST-1D reference MLP (40-100-100-10, residual second layer)::

    >>> model = mlp((100, 100), 10, activation="relu", residual=True)
    >>> out_shape, params = model.init(jax.random.key(0), (40,))
    >>> out_shape, count_params(params)     # 40*100+100 + 100*100+100 + 100*10+10
    ((10,), 15210)
    >>> model.apply(params, jnp.zeros((8, 40))).shape
    (8, 10)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlearn import _checks
from jaxlearn._types import Array, Params, Shape


class Layer(NamedTuple):
    """A layer: ``init(key, input_shape) -> (output_shape, params)`` and
    ``apply(params, x, *, key=None, train=False) -> y``."""

    init: Callable[[Array, Shape], tuple[Shape, Params]]
    apply: Callable[..., Array]


# ---------------------------------------------------------------------------------- initialisers

def torch_default_uniform(key: Array, shape: Shape, fan_in: int, dtype=jnp.float32) -> Array:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for ``nn.Linear``/``nn.Conv1d``
    weights and biases (kaiming_uniform with a = sqrt(5)). Used to match published recipes."""
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


# Weight initialisers by name. Each is ``f(key, shape, dtype) -> array`` with fan-in taken from all
# axes but the last (the layouts above put c_out last and c_in second to last).
_WEIGHT_INITS: dict[str, Callable[..., Array]] = {
    "glorot_uniform": jax.nn.initializers.glorot_uniform(in_axis=-2, out_axis=-1),
    "glorot_normal": jax.nn.initializers.glorot_normal(in_axis=-2, out_axis=-1),
    "he_uniform": jax.nn.initializers.he_uniform(in_axis=-2, out_axis=-1),
    "he_normal": jax.nn.initializers.he_normal(in_axis=-2, out_axis=-1),
    "lecun_normal": jax.nn.initializers.lecun_normal(in_axis=-2, out_axis=-1),
    "torch": None,  # handled in _init_weight_and_bias: also sets the bias distribution
}
INITIALIZERS = tuple(_WEIGHT_INITS)


def _check_w_init(w_init: Any) -> None:
    """A weight initialiser: a name in :data:`INITIALIZERS` or a callable ``f(key, shape, dtype)``
    (a ``jax.nn.initializers`` function, say)."""
    if not callable(w_init):
        _checks.check_choice("w_init", w_init, INITIALIZERS)


def _init_weight_and_bias(key: Array, w_shape: Shape, n_out: int, w_init: Any, use_bias: bool):
    _check_w_init(w_init)
    fan_in = math.prod(w_shape[:-1])
    k_w, k_b = jax.random.split(key)
    if callable(w_init):
        w = w_init(k_w, w_shape, jnp.float32)
        b = jnp.zeros((n_out,), jnp.float32)
    elif w_init == "torch":
        w = torch_default_uniform(k_w, w_shape, fan_in)
        b = torch_default_uniform(k_b, (n_out,), fan_in)
    else:
        w = _WEIGHT_INITS[w_init](k_w, w_shape, jnp.float32)
        b = jnp.zeros((n_out,), jnp.float32)
    return {"w": w, "b": b} if use_bias else {"w": w}


# ------------------------------------------------------------------------------------ dense

def dense(out_features: int, *, w_init: str | Callable = "glorot_uniform",
          use_bias: bool = True) -> Layer:
    """Affine map ``y = x @ w + b``.

    Args:
      out_features: number of outputs.
      w_init: weight initialiser, one of :data:`INITIALIZERS` (``"he_normal"`` suits ReLU,
        ``"glorot_uniform"`` tanh/sigmoid, ``"torch"`` matches PyTorch's ``nn.Linear``) or a
        callable ``f(key, shape, dtype)`` such as ``jax.nn.initializers.he_normal()`` (bias 0).
      use_bias: add a bias ``b``.

    Shapes: ``x`` is ``[..., in_features]``; ``w`` is ``[in_features, out_features]``; returns
    ``[..., out_features]``.
    """
    _checks.check_positive("out_features", out_features, integer=True)
    _check_w_init(w_init)

    def init(key, input_shape):
        _check_input_shape(input_shape, min_ndim=1, layer="dense")
        params = _init_weight_and_bias(key, (input_shape[-1], out_features), out_features,
                                       w_init, use_bias)
        return (*input_shape[:-1], out_features), params

    def apply(params, x, *, key=None, train=False):
        del key, train
        w = params["w"]
        if x.ndim < 1 or x.shape[-1] != w.shape[0]:
            raise ValueError(f"dense: `x` has shape {tuple(x.shape)} but the layer was initialised "
                             f"for {w.shape[0]} input features (last axis)")
        y = x @ w
        return y + jnp.broadcast_to(params["b"], y.shape) if "b" in params else y

    return Layer(init, apply)


# ------------------------------------------------------------------------------- activations

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "identity": lambda x: x,
}
ACTIVATIONS = tuple(_ACTIVATIONS)


def elementwise(fn: Callable[[Array], Array]) -> Layer:
    """A parameter-free layer applying ``fn`` to every element."""

    def init(key, input_shape):
        del key
        return tuple(input_shape), ()

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        return fn(x)

    return Layer(init, apply)


def _activation_fn(name_or_fn: str | Callable[[Array], Array]) -> Callable[[Array], Array]:
    if callable(name_or_fn):
        return name_or_fn
    _checks.check_choice("activation", name_or_fn, ACTIVATIONS)
    return _ACTIVATIONS[name_or_fn]


def activation(name: str | Callable[[Array], Array]) -> Layer:
    """The activation layer called ``name`` (one of :data:`ACTIVATIONS`), or applying the
    elementwise function given instead of a name (``activation(jax.nn.silu)``)."""
    return elementwise(_activation_fn(name))


_activation_layer = activation   # for mlp, whose argument `activation` hides this function


relu = activation("relu")
tanh = activation("tanh")
sigmoid = activation("sigmoid")


# ------------------------------------------------------------------------------ composition

def serial(*layers: Layer) -> Layer:
    """Composes layers left to right. Params are a tuple with one entry per layer.

    The ``key`` given to ``apply`` is split into one key per layer, so every dropout layer draws
    its own mask.
    """
    if not layers:
        raise ValueError("serial: give at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"serial: argument {i} must be a Layer, got {type(layer).__name__}")

    def init(key, input_shape):
        keys = jax.random.split(key, len(layers))
        params = []
        shape = tuple(input_shape)
        for k, layer in zip(keys, layers):
            shape, p = layer.init(k, shape)
            params.append(p)
        return shape, tuple(params)

    def apply(params, x, *, key=None, train=False):
        if len(params) != len(layers):
            raise ValueError(f"serial: got params for {len(params)} layers, model has "
                             f"{len(layers)}")
        keys = jax.random.split(key, len(layers)) if key is not None else [None] * len(layers)
        for p, k, layer in zip(params, keys, layers):
            x = layer.apply(p, x, key=k, train=train)
        return x

    return Layer(init, apply)


def residual(layer: Layer) -> Layer:
    """``x + layer(x)``: a skip connection around ``layer`` (which must keep the shape)."""

    def init(key, input_shape):
        out_shape, params = layer.init(key, input_shape)
        if tuple(out_shape) != tuple(input_shape):
            raise ValueError(f"residual: the inner layer maps shape {tuple(input_shape)} to "
                             f"{tuple(out_shape)}; a skip connection needs equal shapes")
        return tuple(input_shape), params

    def apply(params, x, *, key=None, train=False):
        return x + layer.apply(params, x, key=key, train=train)

    return Layer(init, apply)


def mlp(hidden: Sequence[int], out_features: int, *,
        activation: str | Callable[[Array], Array] = "relu", residual: bool = False,
        dropout: float = 0.0, w_init: str | Callable | None = None) -> Layer:
    """Multi-layer perceptron ``dense -> act -> ... -> dense``.

    Args:
      hidden: widths of the hidden layers, e.g. ``(100, 100)``.
      out_features: width of the output layer (no activation: it returns logits).
      activation: hidden activation, one of :data:`ACTIVATIONS` or an elementwise function.
      residual: wrap every hidden layer whose input and output widths agree in a skip connection,
        ``h <- h + act(dense(h))``, as in the MNIST-1D reference MLP.
      dropout: rate of an inverted-dropout layer after each hidden activation (0 = none).
      w_init: weight initialiser (a name or a callable, see :func:`dense`); default
        ``"he_normal"`` for ReLU/GELU (by name or as ``jax.nn.relu`` / ``jax.nn.gelu``),
        ``"glorot_uniform"`` else.
    """
    hidden = tuple(hidden)
    for i, h in enumerate(hidden):
        _checks.check_positive(f"hidden[{i}]", h, integer=True)
    _checks.check_positive("out_features", out_features, integer=True)
    act_fn = _activation_fn(activation)
    _checks.check_in_range("dropout", dropout, 0.0, 1.0)
    if w_init is None:
        rectifier = act_fn in (_ACTIVATIONS["relu"], _ACTIVATIONS["gelu"])
        w_init = "he_normal" if rectifier else "glorot_uniform"
    act = _activation_layer(act_fn)
    skip = residual
    layers: list[Layer] = []
    for i, width in enumerate(hidden):
        block = serial(dense(width, w_init=w_init), act)
        if skip and i > 0 and hidden[i - 1] == width:
            block = _residual_layer(block)
        layers.append(block)
        if dropout > 0:
            layers.append(_dropout_layer(dropout))
    layers.append(dense(out_features, w_init=w_init))
    return serial(*layers)


# --------------------------------------------------------------------------------- reshaping

def flatten() -> Layer:
    """``[batch, *shape] -> [batch, prod(shape)]``."""

    def init(key, input_shape):
        del key
        return (math.prod(input_shape),), ()

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        return x.reshape(x.shape[0], -1)

    return Layer(init, apply)


def reshape(shape: Sequence[int]) -> Layer:
    """Reshapes each example to ``shape`` (e.g. ``(40,) -> (40, 1)`` before a 1-D conv)."""
    shape = tuple(shape)

    def init(key, input_shape):
        del key
        if math.prod(input_shape) != math.prod(shape):
            raise ValueError(f"reshape: cannot reshape examples of shape {tuple(input_shape)} "
                             f"to {shape}")
        return shape, ()

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        return x.reshape(x.shape[0], *shape)

    return Layer(init, apply)


# ---------------------------------------------------------------------------------- dropout

def dropout(rate: float) -> Layer:
    """Inverted dropout: at train time each unit is zeroed with probability ``rate`` and the
    survivors are scaled by ``1 / (1 - rate)``, so ``E[apply(x)] = x``; at test time it is the
    identity. Srivastava et al. 2014. Needs ``key`` when ``train=True``.
    """
    _checks.check_in_range("rate", rate, 0.0, 1.0)

    def init(key, input_shape):
        del key
        return tuple(input_shape), ()

    def apply(params, x, *, key=None, train=False):
        del params
        if not train or rate == 0.0:
            return x
        if key is None:
            raise ValueError("dropout: `key` is required when `train=True` "
                             "(pass key=jax.random.key(...) to apply)")
        _checks.check_key("key", key)
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))

    return Layer(init, apply)


# ------------------------------------------------------------------------------ convolution

Padding = int | tuple[int, int] | str

# How a convolution is computed: "im2col" (strided slices + one einsum), "xla" (XLA's own
# convolution, ``lax.conv_general_dilated``) or "auto" (chosen by :func:`conv_impl`).
CONV_IMPLS = ("auto", "im2col", "xla")


def conv_impl(impl: str = "auto", backend: str | None = None) -> str:
    """The convolution implementation that ``impl`` stands for on ``backend``.

    ``"auto"`` is ``"im2col"`` on CPU, where XLA's convolution is much slower to train with: its
    backward pass is (``benchmarks/bench_conv.py`` on a 2-core CPU, forward + backward: ~7x slower
    on the MNIST-1D CNN, ~20x on a 2-D CNN for 28x28 images; XLA's forward pass alone is ~3x
    faster on the latter). On GPU and TPU it is ``"xla"``, where XLA calls the vendor's
    convolution kernels (cuDNN) instead of materialising every patch; ``bench_conv.py`` run by
    ``benchmarks/device_check.sh`` measures that choice. ``backend`` defaults to
    ``jax.default_backend()``, read when the layer is applied (so at trace time under ``jit``).

    >>> conv_impl("auto", "cpu"), conv_impl("auto", "gpu"), conv_impl("xla", "cpu")
    ('im2col', 'xla', 'xla')
    """
    _checks.check_choice("impl", impl, CONV_IMPLS)
    if impl != "auto":
        return impl
    return "im2col" if (backend or jax.default_backend()) == "cpu" else "xla"


def _pad_amounts(padding: Padding, size: int, kernel: int, stride: int, name: str):
    if isinstance(padding, str):
        _checks.check_choice(name, padding, ("SAME", "VALID"))
        if padding == "VALID":
            return 0, 0
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"`{name}` must be >= 0, got {padding}")
        return padding, padding
    if (isinstance(padding, tuple) and len(padding) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in padding)):
        if min(padding) < 0:
            raise ValueError(f"`{name}` must be >= 0, got {padding}")
        return padding
    raise TypeError(f"`{name}` must be 'SAME', 'VALID', an int >= 0 or a pair (low, high), "
                    f"got {padding!r}")


def _patches(x: Array, axis: int, kernel: int, stride: int, out: int) -> Array:
    """Stacks the ``kernel`` strided slices of ``x`` along ``axis`` into a new axis after it.

    Strided slices instead of a gather: their transpose is a pad, not a scatter-add, which keeps
    the backward pass cheap on CPU.
    """
    span = stride * (out - 1) + 1
    slices = [jax.lax.slice_in_dim(x, j, j + span, stride, axis=axis) for j in range(kernel)]
    return jnp.stack(slices, axis=axis + 1)


def _conv(n_spatial: int, out_channels: int, kernel_size, stride, padding, w_init, use_bias,
          impl):
    name = f"conv{n_spatial}d"
    _checks.check_choice("impl", impl, CONV_IMPLS)
    kernel_size = _as_tuple(kernel_size, n_spatial, "kernel_size")
    stride = _as_tuple(stride, n_spatial, "stride")
    if (isinstance(padding, tuple) and n_spatial > 1 and len(padding) == n_spatial
            and all(isinstance(p, (tuple, str, int)) for p in padding)):
        paddings = tuple(padding)
    else:
        paddings = (padding,) * n_spatial
    _checks.check_positive("out_channels", out_channels, integer=True)
    _check_w_init(w_init)

    def out_sizes(spatial, arg):
        pads, outs = [], []
        for d in range(n_spatial):
            lo, hi = _pad_amounts(paddings[d], spatial[d], kernel_size[d], stride[d], "padding")
            size = spatial[d] + lo + hi
            if size < kernel_size[d]:
                raise ValueError(f"{name}: `{arg}` has input size {spatial[d]} (padded {size}) "
                                 f"is smaller than kernel_size {kernel_size[d]}")
            pads.append((lo, hi))
            outs.append((size - kernel_size[d]) // stride[d] + 1)
        return pads, outs

    def init(key, input_shape):
        _check_input_shape(input_shape, min_ndim=n_spatial + 1, layer=name, exact=True)
        *spatial, c_in = input_shape
        _, outs = out_sizes(spatial, "input_shape")
        params = _init_weight_and_bias(key, (*kernel_size, c_in, out_channels), out_channels,
                                       w_init, use_bias)
        return (*outs, out_channels), params

    def apply(params, x, *, key=None, train=False):
        del key, train
        w = params["w"]
        if x.ndim != n_spatial + 2 or x.shape[-1] != w.shape[-2]:
            raise ValueError(f"{name}: `x` has shape {tuple(x.shape)} but the layer expects "
                             f"[batch, {'spatial, ' * n_spatial}{w.shape[-2]}] (channels last)")
        pads, outs = out_sizes(x.shape[1:-1], "x")
        if conv_impl(impl) == "xla":
            spec = ("NWC", "WIO", "NWC") if n_spatial == 1 else ("NHWC", "HWIO", "NHWC")
            y = jax.lax.conv_general_dilated(x, w, stride, pads, dimension_numbers=spec)
        else:
            x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
            # im2col: [batch, o1, k1, (o2, k2,) c_in], then one einsum with the kernel.
            for d in range(n_spatial):
                x = _patches(x, 1 + 2 * d, kernel_size[d], stride[d], outs[d])
            if n_spatial == 1:
                y = jnp.einsum("nokc,kcf->nof", x, w)
            else:  # x: [n, oh, kh, ow, kw, c]
                y = jnp.einsum("nhawbc,abcf->nhwf", x, w)
        return y + jnp.broadcast_to(params["b"], y.shape) if "b" in params else y

    return Layer(init, apply)


def conv1d(out_channels: int, kernel_size: int, *, stride: int = 1, padding: Padding = 0,
           w_init: str = "he_normal", use_bias: bool = True, impl: str = "auto") -> Layer:
    """1-D convolution (cross-correlation, as in every DL library).

    ``y[n, o, f] = b[f] + sum_{k, c} x_pad[n, o * stride + k, c] * w[k, c, f]``.

    Shapes: ``x`` is ``[batch, length, c_in]``; ``w`` is ``[kernel_size, c_in, out_channels]``;
    returns ``[batch, (length + pad_lo + pad_hi - kernel_size) // stride + 1, out_channels]``.
    ``padding`` is an int (both sides), a pair ``(low, high)``, ``"SAME"`` or ``"VALID"``.

    ``impl`` picks how it is computed, with the same result: ``"im2col"`` stacks the
    ``kernel_size`` strided slices of ``x`` and contracts them with ``w`` in one einsum (faster on
    CPU for the small kernels used here); ``"xla"`` is ``lax.conv_general_dilated(x, w,
    (stride,), padding, dimension_numbers=("NWC", "WIO", "NWC"))`` (cuDNN on GPU); ``"auto"``
    (default) chooses by backend, see :func:`conv_impl`. The two agree to float rounding: they
    sum the same products in another order (tested in float64 to 1e-10, values and gradients).
    """
    return _conv(1, out_channels, kernel_size, stride, padding, w_init, use_bias, impl)


def conv2d(out_channels: int, kernel_size: int | tuple[int, int], *,
           stride: int | tuple[int, int] = 1, padding: Padding = 0,
           w_init: str = "he_normal", use_bias: bool = True, impl: str = "auto") -> Layer:
    """2-D convolution; ``x`` is ``[batch, height, width, c_in]``, ``w`` is
    ``[kh, kw, c_in, out_channels]``. Same conventions as :func:`conv1d` per spatial axis,
    including ``impl`` (im2col + einsum, or ``lax.conv_general_dilated`` with
    ``("NHWC", "HWIO", "NHWC")``).

    ``padding`` is either one value for both axes (an int, ``"SAME"`` or ``"VALID"``) or a pair
    with one :func:`conv1d` form per axis, ``(pad_h, pad_w)``: e.g. ``(1, 2)``,
    ``((0, 2), (1, 1))`` or ``("SAME", 0)``. So a pair of ints pads height and width
    symmetrically (PyTorch's convention), whereas for conv1d ``(low, high)`` pads its one axis.
    """
    return _conv(2, out_channels, kernel_size, stride, padding, w_init, use_bias, impl)


# ----------------------------------------------------------------------------------- helpers

def _as_tuple(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n
    if (not isinstance(value, tuple) or len(value) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"`{name}` must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < 1 for v in value):
        raise ValueError(f"`{name}` must be >= 1, got {value}")
    return value


def _check_input_shape(input_shape, *, min_ndim: int, layer: str, exact: bool = False) -> None:
    if not isinstance(input_shape, (tuple, list)) or not all(
            isinstance(s, int) and s > 0 for s in input_shape):
        raise TypeError(f"{layer}: `input_shape` must be a tuple of positive ints (one example, "
                        f"no batch axis), got {input_shape!r}")
    bad = len(input_shape) != min_ndim if exact else len(input_shape) < min_ndim
    if bad:
        raise ValueError(f"{layer}: `input_shape` must have {min_ndim} dimensions "
                         f"(one example, no batch axis), got {tuple(input_shape)}")


def count_params(params: Params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(int(p.size) for p in jax.tree.leaves(params))


def init_stacked(layer: Layer, keys: Array, input_shape: Shape) -> Params:
    """Params of ``len(keys)`` independent initialisations, stacked on a leading axis.

    ``init_stacked(layer, keys, shape)[i]`` equals ``layer.init(keys[i], shape)[1]``; use it with
    :func:`jaxlearn.train.fit_many` to train the members at once.
    """
    _checks.check_key("keys", keys)
    return _stacked_init(layer, tuple(input_shape))(keys)


@functools.lru_cache(maxsize=128)
def _stacked_init(layer: Layer, input_shape: Shape):
    # One compiled program per (layer, shape): eager inits compile every random op separately.
    return jax.jit(jax.vmap(lambda k: layer.init(k, input_shape)[1]))


# mlp's arguments `residual` and `dropout` hide these layer functions inside it.
_residual_layer = residual
_dropout_layer = dropout
