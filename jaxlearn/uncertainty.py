"""Uncertainty and calibration: MC dropout, deep ensembles, temperature scaling, and the measures
that tell an honest model from an overconfident one.

Predictive samples are probabilities ``[S, batch, K]``: ``S`` stochastic forward passes
(:func:`mc_dropout_predict`, Gal & Ghahramani 2016) or ``S = M`` ensemble members
(:func:`ensemble_predict`, Lakshminarayanan et al. 2017). Their mean over ``S`` is the predictive
distribution ``p(y | x) = 1/S sum_s p_s(y | x)``; a single deterministic model is ``probs[None]``.

Measures (natural logs, nats):

* ``predictive_entropy = H[1/S sum_s p_s]``: total uncertainty;
* ``mutual_information = H[1/S sum_s p_s] - 1/S sum_s H[p_s] >= 0`` (BALD, Houlsby et al. 2011):
  the part due to disagreement between samples (epistemic), 0 when all samples agree;
* :func:`expected_calibration_error` and :func:`reliability_diagram` (Guo et al. 2017), with the
  bin rule stated there;
* NLL and Brier score are :func:`jaxlearn.metrics.log_loss` and
  :func:`jaxlearn.metrics.brier_score`; :func:`uncertainty_metrics` reports them all at once;
* :func:`ood_auroc`: how well a score (entropy, mutual information, ``1 - max p``) separates
  in-distribution from shifted / out-of-distribution inputs.

Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks") divides the
logits by one scalar ``T > 0`` fitted by minimising the NLL on held-out data
(:func:`fit_temperature`); ``argmax`` and hence accuracy are unchanged.

Two samples that agree on a 50/50 prediction are uncertain but not in disagreement; two that are
each sure of a different class disagree completely (``log 2 = 0.693`` nats)::

    >>> agree = jnp.array([[[0.5, 0.5]], [[0.5, 0.5]]])          # [S=2, batch=1, K=2]
    >>> disagree = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> predictive_entropy(agree), mutual_information(agree)
    (Array([0.6931472], dtype=float32), Array([0.], dtype=float32))
    >>> mutual_information(disagree)
    Array([0.6931472], dtype=float32)

An ensemble is a params pytree stacked over members (:func:`jaxlearn.nn.init_stacked`), trained
all at once with :func:`jaxlearn.train.fit_many`::

    >>> model = jl.nn.mlp((16,), 3)
    >>> stacked = jl.nn.init_stacked(model, jax.random.split(jax.random.key(0), 5), (4,))
    >>> x = jax.random.normal(jax.random.key(1), (10, 4))
    >>> probs = ensemble_predict(model.apply, stacked, x)              # [5, 10, 3]
    >>> sorted(uncertainty_metrics(probs, jnp.zeros(10, jnp.int32)))
    ['accuracy', 'brier', 'ece', 'entropy', 'mutual_information', 'nll']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, _keys
from jaxlearn import metrics as metrics_lib
from jaxlearn._types import Array, Params, PRNGKeyArray
from jaxlearn.apply import as_apply

# Rows of probabilities may sum to 1 up to this much (a float32 softmax, then a mean over samples).
_SUM_TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------ checks

def _check_probs(name: str, probs: Any, ndim: int) -> Any:
    """Float ``probs`` of rank ``ndim`` whose last axis (``K >= 2``) holds distributions."""
    probs = _checks.as_array(name, probs)
    _checks.check_float(name, probs)
    _checks.check_ndim(name, probs, ndim)
    shape_text = "[S, batch, K]" if ndim == 3 else "[batch, K]"
    if probs.shape[-1] < 2 or 0 in probs.shape:
        raise ValueError(f"`{name}` must have shape {shape_text} with K >= 2 classes and no empty "
                         f"axis, got {tuple(probs.shape)}")
    _checks.check_finite(name, probs)
    if _checks.is_concrete(probs):
        arr = np.asarray(probs, np.float64)
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ValueError(f"`{name}` must hold probabilities in [0, 1], got values in "
                             f"[{arr.min():.6g}, {arr.max():.6g}]; apply softmax to logits first")
        sums = arr.sum(-1)
        worst = float(np.max(np.abs(sums - 1.0)))
        if worst > _SUM_TOLERANCE:
            raise ValueError(f"`{name}` must sum to 1 over its last axis (classes); a row sums to "
                             f"{1.0 + worst if np.max(sums) > 1 else 1.0 - worst:.6g}")
    return probs


def _check_labels_for(probs: Any, y: Any) -> Any:
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_labels("y", y, probs.shape[-1])
    if y.shape[0] != probs.shape[-2]:
        raise ValueError(f"`y` has {y.shape[0]} labels but `probs` has {probs.shape[-2]} "
                         f"examples (shape {tuple(probs.shape)}); they must match")
    return y


def _check_n_bins(n_bins: Any) -> None:
    _checks.check_number("n_bins", n_bins, integer=True)
    if n_bins < 1:
        raise ValueError(f"`n_bins` must be >= 1, got {n_bins}")


def _check_binned(probs: Any, y: Any, n_bins: Any) -> tuple[Any, Any]:
    """The arguments of the binned calibration metrics: probabilities ``[n, K]``, labels ``[n]``
    below ``K``, ``n_bins >= 1``."""
    probs = _check_probs("probs", probs, 2)
    y = _check_labels_for(probs, y)
    _check_n_bins(n_bins)
    return probs, y


def _check_logits(name: str, logits: Any) -> Any:
    logits = _checks.as_array(name, logits)
    _checks.check_float(name, logits)
    _checks.check_ndim(name, logits, 2)
    _checks.check_nonempty(name, logits)
    if logits.shape[1] < 2:
        raise ValueError(f"`{name}` must be [n, K] with K >= 2 classes, got "
                         f"{tuple(logits.shape)}")
    _checks.check_finite(name, logits)
    return logits


# ------------------------------------------------------------------------------- prediction

@_keys.key_keyword(3, "mc_dropout_predict(apply_fn, params, x, key=key, n_samples=...)")
def mc_dropout_predict(apply_fn: Callable, params: Params, x: Array, *, key: PRNGKeyArray,
                       n_samples: int) -> Array:
    """Monte Carlo dropout: ``n_samples`` forward passes in train mode (dropout on), ``vmap``-ed.

    Sample ``s`` runs ``softmax(apply_fn(params, x, key=keys[s], train=True))`` with
    ``keys = jax.random.split(key, n_samples)``. Gal & Ghahramani 2016. A model without dropout
    (or other train-time noise) gives ``n_samples`` identical rows.

    Args:
      apply_fn: classifier returning logits ``[batch, K]``; must take ``key`` and ``train``.
      params: its params. x: inputs ``[batch, ...]``. key: ``jax.random`` key.
      n_samples: ``S >= 1``.

    Returns:
      Probabilities ``[S, batch, K]``.
    """
    apply = as_apply(apply_fn)
    _checks.check_key("key", key)
    _checks.check_positive("n_samples", n_samples, integer=True)
    x = _checks.as_array("x", x)
    _checks.check_nonempty("x", x)
    _checks.check_float("x", x)
    keys = jax.random.split(key, n_samples)
    return _mc_dropout(apply, params, jnp.asarray(x), keys)


@functools.partial(jax.jit, static_argnames="apply")
def _mc_dropout(apply, params, x, keys):
    return jax.vmap(lambda k: jax.nn.softmax(apply(params, x, key=k, train=True), axis=-1))(keys)


def ensemble_predict(apply_fn: Callable, stacked_params: Params, x: Array) -> Array:
    """Predictions of every member of an ensemble, ``vmap``-ed over the members' params.

    Args:
      apply_fn: classifier returning logits ``[batch, K]``.
      stacked_params: the ``M`` members' params stacked on a leading axis (as returned by
        :func:`jaxlearn.train.fit_many` or :func:`jaxlearn.nn.init_stacked`).
      x: inputs ``[batch, ...]``, shared by all members.

    Returns:
      Probabilities ``[M, batch, K]`` (test mode: ``softmax(apply_fn(params[m], x))``).
    """
    apply = as_apply(apply_fn)
    leaves = jax.tree.leaves(stacked_params)
    if not leaves:
        raise ValueError("`stacked_params` has no arrays")
    n_members = leaves[0].shape[0] if leaves[0].ndim else None
    for leaf in leaves:
        if leaf.ndim < 1 or leaf.shape[0] != n_members:
            raise ValueError("`stacked_params` must have the same leading (member) axis on every "
                             f"leaf; found shapes {tuple(leaves[0].shape)} and "
                             f"{tuple(leaf.shape)}")
    x = _checks.as_array("x", x)
    _checks.check_nonempty("x", x)
    _checks.check_float("x", x)
    return _ensemble(apply, stacked_params, jnp.asarray(x))


@functools.partial(jax.jit, static_argnames="apply")
def _ensemble(apply, stacked_params, x):
    return jax.vmap(lambda p: jax.nn.softmax(apply(p, x, train=False), axis=-1))(stacked_params)


# -------------------------------------------------------------------- temperature scaling

def fit_temperature(logits: Array, y: Array, *, bounds: tuple[float, float] = (0.01, 100.0),
                    n_iter: int = 80) -> Array:
    """Temperature ``T`` minimising the held-out NLL ``1/n sum_i -log softmax(z_i / T)_{y_i}``.

    The NLL is convex in ``1/T`` (a log-sum-exp of linear functions minus a linear one), hence
    unimodal in ``log T``; a golden-section search over ``log T`` in ``log(bounds)`` (one
    ``lax.fori_loop`` of ``n_iter`` steps, the bracket shrinking by 0.618 per step) finds it. If
    the minimum lies outside ``bounds`` the nearest bound is returned.

    Args:
      logits: held-out (validation) logits ``[n, K]``, not the training set's.
      y: their integer labels ``[n]``.
      bounds: ``(T_min, T_max)``, ``0 < T_min < T_max``.
      n_iter: golden-section steps, ``>= 1`` (80 shrinks the bracket below float32 resolution).

    Returns:
      ``T``, a float scalar. Calibrated probabilities are
      ``softmax(apply_temperature(logits, T))``.
    """
    logits = _check_logits("logits", logits)
    y = _check_labels_for(logits, y)
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise TypeError(f"`bounds` must be a pair (T_min, T_max), got {bounds!r}")
    _checks.check_positive("bounds[0]", bounds[0])
    _checks.check_number("bounds[1]", bounds[1])
    if not bounds[0] < bounds[1]:
        raise ValueError(f"`bounds` must be (T_min, T_max) with T_min < T_max, got {bounds}")
    _checks.check_positive("n_iter", n_iter, integer=True)
    return _fit_temperature(jnp.asarray(logits), jnp.asarray(y), float(np.log(bounds[0])),
                            float(np.log(bounds[1])), n_iter)


def _nll_at(logits: Array, y: Array, log_t: Array) -> Array:
    z = logits * jnp.exp(-log_t)
    picked = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)


@functools.partial(jax.jit, static_argnames="n_iter")
def _fit_temperature(logits, y, low, high, n_iter):
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    nll = functools.partial(_nll_at, logits, y)

    def body(_, bracket):
        a, b = bracket
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        # The minimum of a unimodal function lies in [a, d] if f(c) < f(d), else in [c, b].
        keep_left = nll(c) < nll(d)
        return jnp.where(keep_left, a, c), jnp.where(keep_left, d, b)

    a, b = jax.lax.fori_loop(0, n_iter, body, (jnp.asarray(low), jnp.asarray(high)))
    return jnp.exp((a + b) / 2.0)


def apply_temperature(logits: Array, temperature: float | Array) -> Array:
    """``logits / T``: temperature-scaled logits ``[..., K]`` (``T > 0`` keeps every argmax)."""
    logits = _checks.as_array("logits", logits)
    _checks.check_float("logits", logits)
    if _checks.is_concrete(temperature):
        t = np.asarray(temperature)
        if t.shape != ():
            raise ValueError(f"`temperature` must be a scalar, got shape {t.shape}")
        if not (np.isfinite(t) and t > 0):
            raise ValueError(f"`temperature` must be finite and > 0, got {float(t)}")
    return logits / temperature


# ------------------------------------------------------------------------------- calibration

class ReliabilityDiagram(NamedTuple):
    """Per-bin statistics of :func:`reliability_diagram` (``B = n_bins``).

    Attributes:
      bin_edges: ``[B + 1]``, ``i / B``.
      confidence: ``[B]`` mean max-probability of the examples in each bin (NaN if empty).
      accuracy: ``[B]`` fraction of them classified correctly (NaN if empty).
      count: ``[B]`` number of examples in each bin (int).
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def _bin_edges(n_bins: int, dtype) -> np.ndarray:
    # i / B rounded once to the probs' dtype: a confidence written as 0.2 in float32 equals the
    # edge 0.2 exactly, so the bin rule holds at the edges too.
    return (np.arange(n_bins + 1, dtype=np.float64) / n_bins).astype(dtype)


@functools.partial(jax.jit, static_argnames="n_bins")
def _bin_stats(probs, y, n_bins):
    confidence = jnp.max(probs, axis=1)
    correct = (jnp.argmax(probs, axis=1) == y).astype(probs.dtype)
    edges = jnp.asarray(_bin_edges(n_bins, probs.dtype))
    # searchsorted(side="left") gives the first edge >= c: bin i holds (edge_i, edge_{i+1}].
    index = jnp.clip(jnp.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = jax.ops.segment_sum(jnp.ones_like(confidence), index, num_segments=n_bins)
    conf_sum = jax.ops.segment_sum(confidence, index, num_segments=n_bins)
    acc_sum = jax.ops.segment_sum(correct, index, num_segments=n_bins)
    return count, conf_sum, acc_sum


def reliability_diagram(probs: Array, y: Array, *, n_bins: int = 15) -> ReliabilityDiagram:
    """Confidence and accuracy per confidence bin (the data of a reliability diagram).

    Bin rule: with ``B = n_bins`` equal-width bins on the confidence ``c_i = max_k p_ik``, bin
    ``b`` (``0 <= b < B``) holds the examples with ``b/B < c_i <= (b+1)/B``, except that the first
    bin also holds ``c_i = 0`` (right-closed bins; in practice ``c_i >= 1/K``). The prediction is
    ``argmax_k p_ik`` (ties to the lowest index).

    Args:
      probs: probabilities ``[n, K]`` (rows summing to 1), e.g. a mean over samples.
      y: integer labels ``[n]``.
      n_bins: ``B >= 1``.

    Returns:
      A :class:`ReliabilityDiagram` of numpy arrays.
    """
    probs, y = _check_binned(probs, y, n_bins)
    count, conf_sum, acc_sum = (np.asarray(a, np.float64)
                                for a in _bin_stats(jnp.asarray(probs), jnp.asarray(y), n_bins))
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    return ReliabilityDiagram(_bin_edges(n_bins, np.float64), confidence, accuracy,
                              count.astype(np.int64))


def expected_calibration_error(probs: Array, y: Array, *, n_bins: int = 15) -> Array:
    """ECE ``= sum_b (n_b / n) |acc_b - conf_b|`` over ``n_bins`` equal-width confidence bins.

    ``acc_b`` and ``conf_b`` are the accuracy and mean confidence (max probability) of the
    ``n_b`` examples in bin ``b``; empty bins contribute 0. Bins are right-closed,
    ``(b/B, (b+1)/B]``, the first one also holding 0 (see :func:`reliability_diagram`).
    Naeini et al. 2015; Guo et al. 2017 use ``B = 15``. Jittable.

    Args:
      probs: probabilities ``[n, K]``. y: integer labels ``[n]``. n_bins: ``B >= 1``.

    Returns:
      A float scalar in ``[0, 1]``.

    >>> expected_calibration_error(jnp.array([[0.9, 0.1], [0.6, 0.4]]), jnp.array([0, 1]),
    ...                            n_bins=2)     # bin 2: conf 0.75, acc 0.5
    Array(0.25, dtype=float32)
    """
    probs, y = _check_binned(probs, y, n_bins)
    return _ece(jnp.asarray(probs), jnp.asarray(y), n_bins)


@functools.partial(jax.jit, static_argnames="n_bins")
def _ece(probs, y, n_bins):
    count, conf_sum, acc_sum = _bin_stats(probs, y, n_bins)
    # |acc_b - conf_b| n_b = |acc_sum_b - conf_sum_b|: no division, empty bins give 0.
    return jnp.sum(jnp.abs(acc_sum - conf_sum)) / probs.shape[0]


def plot_reliability(ax: Any, diagram: ReliabilityDiagram, *, label: str | None = None,
                     color: str | None = None) -> Any:
    """Draws a reliability diagram on a matplotlib ``Axes`` (pyplot is never imported).

    Bars of accuracy per bin (empty bins left out), the gap to the mean confidence hatched, and the
    diagonal of perfect calibration. Returns ``ax``.

    >>> import matplotlib.figure
    >>> probs, y = jnp.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]), jnp.array([0, 1, 1])
    >>> ax = matplotlib.figure.Figure().add_subplot()
    >>> plot_reliability(ax, reliability_diagram(probs, y, n_bins=5), label="model") is ax
    True
    """
    if not isinstance(diagram, ReliabilityDiagram):
        raise TypeError("`diagram` must be a ReliabilityDiagram (from reliability_diagram(...)), "
                        f"got {type(diagram).__name__}")
    edges = diagram.bin_edges
    width = np.diff(edges)
    filled = diagram.count > 0
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="gray", linewidth=1)
    bars = ax.bar(edges[:-1][filled], diagram.accuracy[filled], width=width[filled],
                  align="edge", edgecolor="black", color=color, alpha=0.8, label=label)
    gap_color = bars.patches[0].get_facecolor() if bars.patches else color
    ax.bar(edges[:-1][filled], diagram.confidence[filled] - diagram.accuracy[filled],
           bottom=diagram.accuracy[filled], width=width[filled], align="edge", fill=False,
           hatch="//", edgecolor=gap_color)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    if label is not None:
        ax.legend()
    return ax


# --------------------------------------------------------------------- uncertainty measures

def _entropy(p: Array) -> Array:
    return -jnp.sum(jax.scipy.special.xlogy(p, p), axis=-1)


def predictive_entropy(sampled_probs: Array) -> Array:
    """Total uncertainty ``H[p_bar] = -sum_k p_bar_k log p_bar_k``, ``p_bar = 1/S sum_s p_s``.

    Args:
      sampled_probs: ``[S, batch, K]`` (``S = 1`` for one deterministic model: ``probs[None]``).

    Returns:
      ``[batch]`` in ``[0, log K]`` (nats).
    """
    p = _check_probs("sampled_probs", sampled_probs, 3)
    return _entropy(jnp.mean(jnp.asarray(p), axis=0))


def mutual_information(sampled_probs: Array) -> Array:
    """BALD mutual information ``I = H[1/S sum_s p_s] - 1/S sum_s H[p_s]`` (Houlsby et al. 2011).

    The information the prediction carries about the model (epistemic uncertainty): ``>= 0`` by
    concavity of ``H`` (Jensen), 0 iff every sample gives the same distribution. Float rounding can
    make it ``-1e-7``; it is floored at 0.

    Args:
      sampled_probs: ``[S, batch, K]``.

    Returns:
      ``[batch]`` in ``[0, log K]`` (nats).
    """
    p = jnp.asarray(_check_probs("sampled_probs", sampled_probs, 3))
    return jnp.maximum(_entropy(jnp.mean(p, axis=0)) - jnp.mean(_entropy(p), axis=0), 0.0)


def ood_auroc(scores_in: Array, scores_out: Array) -> Array:
    """AUROC of telling out-of-distribution inputs (positives) from in-distribution ones.

    ``P(score_out > score_in) + 1/2 P(tie)`` over all pairs, by :func:`jaxlearn.metrics.roc_auc`;
    the score must be *higher for more uncertain* inputs (predictive entropy, mutual information,
    ``1 - max p``). 0.5 means the score cannot tell them apart, 1 that it separates them.

    Args:
      scores_in: ``[n_in]`` scores of in-distribution inputs.
      scores_out: ``[n_out]`` scores of shifted / out-of-distribution inputs.

    Returns:
      A float scalar in ``[0, 1]``.
    """
    arrays = []
    for name, s in (("scores_in", scores_in), ("scores_out", scores_out)):
        s = _checks.as_array(name, s)
        _checks.check_float(name, s)
        _checks.check_ndim(name, s, 1)
        _checks.check_nonempty(name, s)
        arrays.append(jnp.asarray(s))
    scores = jnp.concatenate(arrays)
    labels = jnp.concatenate([jnp.zeros(arrays[0].shape[0], jnp.int32),
                              jnp.ones(arrays[1].shape[0], jnp.int32)])
    return metrics_lib.roc_auc(labels, scores)


def uncertainty_metrics(sampled_probs: Array, y: Array, *, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE, NLL, Brier, mean predictive entropy and mean mutual information in one call.

    All are computed on the predictive distribution ``p_bar = 1/S sum_s p_s``: accuracy
    (:func:`jaxlearn.metrics.accuracy`), ``ece`` (:func:`expected_calibration_error`), ``nll``
    (:func:`jaxlearn.metrics.log_loss`), ``brier`` (:func:`jaxlearn.metrics.brier_score`),
    ``entropy`` (mean :func:`predictive_entropy`) and ``mutual_information`` (mean
    :func:`mutual_information`; 0 for ``S = 1``).

    Args:
      sampled_probs: ``[S, n, K]`` (``probs[None]`` for a single model). y: labels ``[n]``.
      n_bins: ECE bins.

    Returns:
      ``{"accuracy", "ece", "nll", "brier", "entropy", "mutual_information"}`` as floats.
    """
    p = jnp.asarray(_check_probs("sampled_probs", sampled_probs, 3))
    y = jnp.asarray(_check_labels_for(p, y))
    _check_n_bins(n_bins)
    mean = jnp.mean(p, axis=0)
    return {
        "accuracy": float(metrics_lib.accuracy(mean, y)),
        "ece": float(_ece(mean, y, n_bins)),
        "nll": float(metrics_lib.log_loss(mean, y)),
        "brier": float(metrics_lib.brier_score(mean, y)),
        "entropy": float(jnp.mean(_entropy(mean))),
        "mutual_information": float(jnp.mean(mutual_information(p))),
    }


# ------------------------------------------------------- more calibration and OOD measures

@functools.partial(jax.jit, static_argnames="n_bins")
def _adaptive_ece(probs, y, n_bins):
    confidence = jnp.max(probs, axis=1)
    correct = (jnp.argmax(probs, axis=1) == y).astype(probs.dtype)
    edges = jnp.quantile(confidence, jnp.linspace(0.0, 1.0, n_bins + 1, dtype=probs.dtype))
    # As sklearn: searchsorted(side="left") on the inner edges, so bin b is (e_b, e_{b+1}].
    index = jnp.searchsorted(edges[1:-1], confidence, side="left")
    conf_sum = jax.ops.segment_sum(confidence, index, num_segments=n_bins)
    acc_sum = jax.ops.segment_sum(correct, index, num_segments=n_bins)
    return jnp.sum(jnp.abs(acc_sum - conf_sum)) / probs.shape[0]


def adaptive_expected_calibration_error(probs: Array, y: Array, *, n_bins: int = 15) -> Array:
    """ECE over equal-mass (adaptive) confidence bins: ``sum_b (n_b / n) |acc_b - conf_b|``.

    As :func:`expected_calibration_error`, but the edges are the ``b / B`` quantiles of the
    confidences ``c_i = max_k p_ik`` (linear interpolation, numpy's default), so each bin holds
    about ``n / B`` examples and no bin is spent on confidences no example has (Nixon et al.
    2019's adaptive binning, applied to the top label; Roelofs et al. 2022's ECE_EM). Bin ``b``
    holds ``e_b < c_i <= e_{b+1}``, the first also ``e_0 = min c``; tied confidences share a bin,
    so with ties some bins hold more and some none. These are the bins of
    ``sklearn.calibration.calibration_curve(correct, c, n_bins=B, strategy="quantile")``
    (tested). Jittable.

    Args:
      probs: probabilities ``[n, K]``. y: integer labels ``[n]``. n_bins: ``B >= 1``.

    Returns:
      A float scalar in ``[0, 1]``.

    >>> probs = jnp.array([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]])
    >>> y = jnp.array([1, 0, 0, 0])     # bins {0.6, 0.7}: acc 0.5, {0.8, 0.9}: acc 1
    >>> adaptive_expected_calibration_error(probs, y, n_bins=2)
    Array(0.15, dtype=float32)
    """
    probs, y = _check_binned(probs, y, n_bins)
    return _adaptive_ece(jnp.asarray(probs), jnp.asarray(y), n_bins)


@functools.partial(jax.jit, static_argnames="n_bins")
def _classwise_ece(probs, y, n_bins):
    n, n_classes = probs.shape
    edges = jnp.asarray(_bin_edges(n_bins, probs.dtype))
    index = jnp.clip(jnp.searchsorted(edges, probs, side="left") - 1, 0, n_bins - 1)   # [n, K]
    segment = (index + n_bins * jnp.arange(n_classes)[None, :]).reshape(-1)
    hits = (y[:, None] == jnp.arange(n_classes)[None, :]).astype(probs.dtype)
    gap = jax.ops.segment_sum((hits - probs).reshape(-1), segment,
                              num_segments=n_bins * n_classes)
    return jnp.sum(jnp.abs(gap)) / (n * n_classes)


def classwise_calibration_error(probs: Array, y: Array, *, n_bins: int = 15) -> Array:
    """Classwise ECE (Kull et al. 2019): every class's calibration, not only the top label's.

    ``1/K sum_k sum_b (n_kb / n) |freq_kb - conf_kb|``, where bin ``b`` of class ``k`` holds the
    examples whose ``p_ik`` falls in the equal-width bin ``(b/B, (b+1)/B]`` (the first also holding
    0, as in :func:`reliability_diagram`), ``conf_kb`` is their mean ``p_ik`` and ``freq_kb`` the
    fraction of them with ``y_i = k``. Per class this is the ECE of
    ``sklearn.calibration.calibration_curve(y == k, p[:, k], n_bins=B)`` (tested). Jittable.

    Args:
      probs: probabilities ``[n, K]``. y: integer labels ``[n]``. n_bins: ``B >= 1``.

    Returns:
      A float scalar in ``[0, 1]``.
    """
    probs, y = _check_binned(probs, y, n_bins)
    return _classwise_ece(jnp.asarray(probs), jnp.asarray(y), n_bins)


@functools.partial(jax.jit, static_argnames="n_bins")
def _mce(probs, y, n_bins):
    count, conf_sum, acc_sum = _bin_stats(probs, y, n_bins)
    gap = jnp.abs(acc_sum - conf_sum) / jnp.maximum(count, 1.0)
    return jnp.max(jnp.where(count > 0, gap, 0.0))


def maximum_calibration_error(probs: Array, y: Array, *, n_bins: int = 15) -> Array:
    """MCE ``= max_b |acc_b - conf_b|`` over the non-empty equal-width confidence bins.

    The worst bin's gap between accuracy and mean confidence (Naeini et al. 2015; Guo et al.
    2017), with the bins of :func:`expected_calibration_error`. It weighs a bin of one example
    like a bin of thousands. Jittable.

    Args:
      probs: probabilities ``[n, K]``. y: integer labels ``[n]``. n_bins: ``B >= 1``.

    Returns:
      A float scalar in ``[0, 1]``.
    """
    probs, y = _check_binned(probs, y, n_bins)
    return _mce(jnp.asarray(probs), jnp.asarray(y), n_bins)


def _check_ood_scores(scores_in: Any, scores_out: Any) -> tuple[Array, Array]:
    arrays = []
    for name, s in (("scores_in", scores_in), ("scores_out", scores_out)):
        s = _checks.check_features(name, s, ndim=1)
        arrays.append(jnp.asarray(s))
    if arrays[0].dtype != arrays[1].dtype:
        arrays[1] = arrays[1].astype(arrays[0].dtype)
    return arrays[0], arrays[1]


@functools.partial(jax.jit, static_argnames="k")
def _fpr_at_tpr(scores_in, scores_out, k):
    threshold = jnp.sort(scores_in)[k - 1]
    return jnp.mean((scores_out <= threshold).astype(jnp.float32))


def ood_fpr_at_95_tpr(scores_in: Array, scores_out: Array) -> Array:
    """FPR at 95% TPR: the fraction of out-of-distribution inputs taken for in-distribution ones
    when 95% of the in-distribution inputs are kept (Hendrycks & Gimpel 2017; Liang et al. 2018).

    In-distribution is the positive class and an input is kept when its score is ``<= t`` (the
    score is *higher for more uncertain* inputs, as in :func:`ood_auroc`). ``t`` is the smallest
    value keeping a fraction ``>= 0.95`` of ``scores_in``: the ``k``-th smallest, ``k`` the least
    integer with ``k / n_in >= 0.95``. The result is ``#{scores_out <= t} / n_out``: 0 is
    perfect, and a score that cannot tell them apart gives about 0.95. Equal to the FPR of
    ``sklearn.metrics.roc_curve`` (in-distribution as 1, score ``-s``) at its first point with TPR
    ``>= 0.95`` (tested). Jittable.

    Args:
      scores_in: ``[n_in]`` scores of in-distribution inputs.
      scores_out: ``[n_out]`` scores of shifted / out-of-distribution inputs.

    Returns:
      A float scalar in ``[0, 1]``.

    >>> ood_fpr_at_95_tpr(jnp.arange(20.0), jnp.array([10.0, 18.0, 18.5, 30.0]))  # t = 18
    Array(0.5, dtype=float32)
    """
    s_in, s_out = _check_ood_scores(scores_in, scores_out)
    n_in = s_in.shape[0]
    # The least k with k / n_in >= 0.95 in float64, as sklearn's TPR is computed.
    k = max(1, int(np.ceil(0.95 * n_in)) - 1)
    while k / n_in < 0.95:
        k += 1
    return _fpr_at_tpr(s_in, s_out, k)


@jax.jit
def _average_precision(positive, scores):
    order = jnp.argsort(-scores, stable=True)
    ranked = -scores[order]                                    # ascending
    hits = positive[order].astype(jnp.float32)
    true_positives = jnp.cumsum(hits)
    # Tied scores form one threshold: every member takes the precision at the end of its tie.
    end = jnp.searchsorted(ranked, ranked, side="right") - 1
    precision = true_positives[end] / (end + 1).astype(jnp.float32)
    return jnp.sum(hits * precision) / jnp.sum(hits)


def ood_aupr_in(scores_in: Array, scores_out: Array) -> Array:
    """AUPR-In: area under the precision-recall curve with in-distribution inputs as positives
    (Hendrycks & Gimpel 2017), ranked by *lowest* uncertainty score first.

    The area is the average precision ``sum_t (R_t - R_{t-1}) P_t`` over the distinct score
    thresholds ``t`` (tied scores change together), which equals
    ``sklearn.metrics.average_precision_score(is_in, -score)`` (tested). It starts from the
    fraction of positives (a useless score) and reaches 1 for perfect separation; unlike AUROC it
    depends on that fraction, so report ``n_in`` and ``n_out`` with it. Jittable.

    Args:
      scores_in: ``[n_in]`` scores, higher for more uncertain inputs.
      scores_out: ``[n_out]`` scores of shifted / out-of-distribution inputs.

    Returns:
      A float scalar in ``(0, 1]``.

    >>> ood_aupr_in(jnp.array([1.0, 2.0]), jnp.array([0.0]))   # ranked out, in, in: (1/2 + 2/3) / 2
    Array(0.5833334, dtype=float32)
    """
    s_in, s_out = _check_ood_scores(scores_in, scores_out)
    positive = jnp.concatenate([jnp.ones(s_in.shape[0], bool), jnp.zeros(s_out.shape[0], bool)])
    return _average_precision(positive, -jnp.concatenate([s_in, s_out]))


def ood_aupr_out(scores_in: Array, scores_out: Array) -> Array:
    """AUPR-Out: as :func:`ood_aupr_in` with the out-of-distribution inputs as positives, ranked
    by *highest* uncertainty score first: ``average_precision_score(is_out, score)`` (tested).

    Args:
      scores_in: ``[n_in]`` scores, higher for more uncertain inputs.
      scores_out: ``[n_out]`` scores of shifted / out-of-distribution inputs.

    Returns:
      A float scalar in ``(0, 1]``.

    >>> ood_aupr_out(jnp.array([0.0, 0.0, 0.0]), jnp.array([0.0]))   # all tied: 1 out of 4
    Array(0.25, dtype=float32)
    """
    s_in, s_out = _check_ood_scores(scores_in, scores_out)
    positive = jnp.concatenate([jnp.zeros(s_in.shape[0], bool), jnp.ones(s_out.shape[0], bool)])
    return _average_precision(positive, jnp.concatenate([s_in, s_out]))
