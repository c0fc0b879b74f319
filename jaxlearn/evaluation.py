"""Prediction and evaluation in test mode, and what a loss says about its labels.

A loss carries its *label kind* — ``"integer"`` (class indices), ``"one_hot"`` (class
probabilities), ``"binary"`` (0/1 targets shaped like the logits), ``"regression"`` — looked up by
the function's identity, so ``loss="softmax_cross_entropy"`` and
``loss=jl.losses.softmax_cross_entropy`` behave the same. A function of your own can declare one
with an attribute: ``my_loss.label_kind = "integer"``. The kind decides the label checks and the
default metrics (accuracy that fits the labels; none for regression or an undeclared loss).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxlearn import _checks, losses
from jaxlearn import metrics as metrics_lib
from jaxlearn._programs import compile_program
from jaxlearn._types import Array, Params
from jaxlearn.apply import as_apply

LABEL_KINDS = ("integer", "one_hot", "binary", "regression")


def label_kind(loss_fn: Callable) -> str | None:
    """The label kind of a loss function (see the module docstring), ``None`` if undeclared."""
    known = {
        losses.softmax_cross_entropy_with_integer_labels: "integer",
        losses.softmax_cross_entropy: "one_hot",
        losses.sigmoid_binary_cross_entropy: "binary",
        losses.binary_cross_entropy: "binary",
        losses.mse: "regression",
    }
    try:
        kind = known.get(loss_fn)
    except TypeError:  # unhashable callable
        kind = None
    kind = kind or getattr(loss_fn, "label_kind", None)
    if kind is not None and kind not in LABEL_KINDS:
        raise ValueError(f"the loss's `label_kind` must be one of {LABEL_KINDS}, got {kind!r}")
    return kind


def one_hot_accuracy(outputs: Array, y: Array) -> Array:
    """Accuracy against one-hot or probability targets: ``mean(argmax outputs == argmax y)``."""
    return jnp.mean(jnp.argmax(outputs, -1) == jnp.argmax(y, -1))


def binary_accuracy(logits: Array, y: Array) -> Array:
    """Accuracy of per-output logits against 0/1 targets: ``mean((logits > 0) == (y > 0.5))``."""
    return jnp.mean((logits > 0) == (y > 0.5))


def _binary_probability_accuracy(probabilities: Array, y: Array) -> Array:
    return jnp.mean((probabilities > 0.5) == (y > 0.5))


def default_metrics(loss_fn: Callable | None) -> dict[str, Callable]:
    """Accuracy that fits the loss's labels; ``{}`` for regression and undeclared losses."""
    if loss_fn is losses.binary_cross_entropy:  # outputs are probabilities
        return {"accuracy": _binary_probability_accuracy}
    kind = label_kind(loss_fn) if loss_fn is not None else "integer"
    return {"integer": {"accuracy": metrics_lib.accuracy},
            "one_hot": {"accuracy": one_hot_accuracy},
            "binary": {"accuracy": binary_accuracy}}.get(kind, {})


def as_metric_dict(metrics, loss_fn) -> dict[str, Callable]:
    if metrics is None:
        return default_metrics(loss_fn)
    if isinstance(metrics, Mapping):
        for name, fn in metrics.items():
            if not callable(fn):
                raise TypeError(f"`metrics[{name!r}]` must be callable(outputs, y), "
                                f"got {type(fn).__name__}")
        return dict(metrics)
    raise TypeError(f"`metrics` must be None or a dict name -> fn(outputs, y), "
                    f"got {type(metrics).__name__}")


def check_data(apply, params, x, y, kind: str | None, *, x_name="x", y_name="y",
               batch: int = 1) -> tuple[Array, Array, tuple[int, ...]]:
    """Validates ``x``/``y`` for a model and a loss's label kind before anything is traced;
    returns them as arrays with the model's output shape for a batch of ``batch``."""
    x = _checks.as_array(x_name, x)
    y = _checks.as_array(y_name, y)
    _checks.check_nonempty(x_name, x)
    _checks.check_same_length(x_name, x, y_name, y)
    _checks.check_float(x_name, x)
    _checks.check_finite(x_name, x)
    _checks.check_finite(y_name, y)
    batch = min(batch, x.shape[0])
    try:
        out = jax.eval_shape(lambda p, xb: apply(p, xb), params, x[:batch])
    except (ValueError, TypeError) as err:
        raise type(err)(f"`apply_fn` failed on a batch of `{x_name}` with shape "
                        f"{(batch, *x.shape[1:])}: {err}") from err
    if kind == "integer":
        if out.ndim != 2:
            raise ValueError(f"a loss on integer labels needs outputs [batch, n_classes]; the "
                             f"model returns shape {tuple(out.shape)}")
        _checks.check_labels(y_name, y, out.shape[-1])
        if y.ndim != 1:
            raise ValueError(f"`{y_name}` must be integer labels of shape [n], got "
                             f"{tuple(y.shape)}")
    elif kind is not None and out.shape[1:] != y.shape[1:]:
        raise ValueError(f"the loss needs targets shaped like the model's outputs: outputs per "
                         f"example {tuple(out.shape[1:])}, `{y_name}` per example "
                         f"{tuple(y.shape[1:])}")
    elif kind in ("one_hot", "binary"):
        _checks.check_float(y_name, y)
        lo, hi = float(jnp.min(y)), float(jnp.max(y))
        if lo < 0 or hi > 1:
            what = "class probabilities" if kind == "one_hot" else "0/1 targets"
            raise ValueError(f"`{y_name}` must hold {what} in [0, 1] for this loss; found values "
                             f"in [{lo:.4g}, {hi:.4g}]")
    return x, y, tuple(out.shape)


def predict(apply_fn: Callable, params: Params, x: Array, *, batch_size: int = 1024) -> Array:
    """``apply_fn(params, x)`` in batches of ``batch_size`` (test mode), one compiled ``lax.map``.

    Shapes: ``x`` ``[n, ...]``; returns ``[n, ...outputs]``. The last batch is zero-padded and the
    padding dropped, so every batch has the same shape and compiles once.
    """
    apply = as_apply(apply_fn)
    x = _checks.as_array("x", x)
    _checks.check_nonempty("x", x)
    _checks.check_positive("batch_size", batch_size, integer=True)
    return _predict_jit(apply, params, jnp.asarray(x), min(batch_size, x.shape[0]))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _predict_jit(apply, params, x, batch_size):
    return batched_apply(apply, params, x, batch_size)


def batched_apply(apply, params, x, batch_size):
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    xp = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(n_batches, batch_size,
                                                                    *x.shape[1:])
    out = jax.lax.map(lambda xb: apply(params, xb, train=False), xp)
    return out.reshape(n_batches * batch_size, *out.shape[2:])[:n]


def make_evaluator(apply, loss_fn, metric_fns, x, y, params, batch_size: int = 1024):
    """``evaluator(params) -> {"loss": float, **metrics}`` as one compiled program (the data are
    arguments, not closed-over constants: no copy of them in the program)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    bs = min(batch_size, x.shape[0])

    def run(params, x, y):
        out = batched_apply(apply, params, x, bs)
        result = {"loss": jnp.mean(loss_fn(out, y))} if loss_fn is not None else {}
        for name, fn in metric_fns.items():
            result[name] = fn(out, y)
        return result

    static = (apply, loss_fn, tuple(metric_fns.items()), bs)
    compiled = compile_program("evaluate", static, lambda: jax.jit(run), (params, x, y))
    return lambda p: {k: float(v) for k, v in compiled(p, x, y).items()}


def evaluate(apply_fn: Callable, params: Params, x: Array, y: Array, *,
             loss: str | Callable | None = None, metrics: Mapping[str, Callable] | None = None,
             batch_size: int = 1024) -> dict[str, float]:
    """Loss and metrics of ``apply_fn`` on ``(x, y)``, computed in batches in test mode.

    Returns ``{"loss": ..., "accuracy": ..., ...}`` (``loss`` only when ``loss`` is given). The
    default metrics fit the loss's labels (accuracy for classification losses, none for
    regression); without a loss, accuracy on integer labels.
    """
    apply = as_apply(apply_fn)
    loss_fn = losses.get_loss(loss) if loss is not None else None
    kind = label_kind(loss_fn) if loss_fn is not None else None
    if loss_fn is None and metrics is None:
        kind = "integer"
    x, y, _ = check_data(apply, params, x, y, kind)
    _checks.check_positive("batch_size", batch_size, integer=True)
    metric_fns = as_metric_dict(metrics, loss_fn)
    return make_evaluator(apply, loss_fn, metric_fns, x, y, params, batch_size)(params)
