"""Property-based tests (hypothesis) of the public API against hostile and broken inputs.

Contract checked for every call: it either returns a result of the documented shape, or raises
``ValueError``/``TypeError`` whose message names an argument in backticks (e.g. "`x` contains 2
NaN ...") — never another exception type (AttributeError, IndexError, an XLA error), never a
silently wrong shape. On top of that, per function:

- data-taking functions (fit, evaluate, fit_standardizer, train_test_split, ridge, least_squares,
  polynomial_features, the metrics, ECE, FGSM) REFUSE NaN/inf inputs with a ValueError naming
  the argument;
- pure elementwise math (the losses, the layers) may pass NaN/inf through (NaN in, NaN out is
  the correct IEEE answer), but for finite input its result must be finite whenever the exact
  value is representable in the input's dtype: we compute the exact value in float64 numpy and
  only require a finite output where that reference fits (e.g. ``mse`` of 1e30 in float32 is
  1e60, not representable, so inf is then the correctly rounded answer).

Inputs: random shapes (0-d up to 3-d, 0-size axes included), dtypes float16/32/64, int32, bool,
complex64, and values mixing ordinary numbers with NaN, +-inf and huge finite ones (1e30, 3e38).
Every property runs under ``derandomize=True`` so CI sees the same cases every run.

Number of cases: each property increments ``_CASES[name]`` once per executed example and counts
its calls that were accepted and refused; the last test prints them (run with ``-s`` to see them)
and checks that every property reached both branches.
"""

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxlearn as jl
from jaxlearn import data, features, linear, losses, metrics, nn, robust, uncertainty

_CASES: Counter = Counter()
# Per property, how many calls returned a result (then checked) and how many were refused.
_OUTCOMES: dict[str, Counter] = {}
_CURRENT = [""]


def _case(name: str) -> None:
    """Marks the start of one example of property ``name``."""
    _CURRENT[0] = name
    _CASES[name] += 1
    _OUTCOMES.setdefault(name, Counter())

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
ALL_DTYPES = (*FLOAT_DTYPES, np.int32, np.bool_, np.complex64)
SPECIALS = (np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38, 0.0)
FINITE = st.floats(-10, 10, allow_nan=False)
ELEMENTS = st.one_of(FINITE, st.sampled_from(SPECIALS))
MOSTLY_FINITE = st.one_of(FINITE, FINITE, FINITE, st.sampled_from(SPECIALS))  # ~1 in 4 hostile
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
SAMPLES = st.tuples(st.integers(1, 6), st.integers(1, 3))  # a data matrix [n, d]


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@st.composite
def hostile(draw, shape=SHAPES, dtypes=ALL_DTYPES, elements=ELEMENTS):
    """An array of a random (or given) shape and dtype holding ordinary and hostile values."""
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype == np.int32:
        return draw(hnp.arrays(dtype, shape, elements=st.integers(-3, 5)))
    values = draw(hnp.arrays(np.float64, shape, elements=elements))
    if dtype == np.bool_:
        return values > 0
    with np.errstate(all="ignore"):  # float16 turns 1e30 into inf: that is part of the test
        return values.astype(dtype)


def _matrix():
    """A well-formed float data matrix [n, d] with the odd hostile value: reaches the math."""
    return hostile(shape=SAMPLES, dtypes=FLOAT_DTYPES, elements=MOSTLY_FINITE)


def _labels(n: int, low: int = -1, high: int = 4):
    return hnp.arrays(np.int32, (n,), elements=st.integers(low, high))


def _distributions(shape):
    """Well-formed probability rows: positive float32 entries normalised along the last axis."""
    return hnp.arrays(np.float32, shape, elements=st.floats(0.125, 1, width=32)).map(
        lambda a: (a / a.sum(-1, keepdims=True)).astype(np.float32))


def _finite(*arrays) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, np.complex128))) for a in arrays)


_REFUSED = object()


def _call(fn, *args, names, **kwargs):
    """Calls ``fn``; a ValueError/TypeError must name one of ``names``; anything else propagates."""
    try:
        out = fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert any(f"`{n}`" in message for n in names), (
            f"{type(err).__name__} does not name any of {names}: {message}")
        _OUTCOMES[_CURRENT[0]]["refused"] += 1
        return _REFUSED
    _OUTCOMES[_CURRENT[0]]["accepted"] += 1
    return out


def _must_refuse_nonfinite(out, **arrays) -> None:
    """Data-taking functions: any NaN/inf among ``arrays`` must have been refused."""
    bad = [name for name, a in arrays.items() if not _finite(a)]
    if bad and out is not _REFUSED:
        raise AssertionError(f"accepted non-finite {bad}")


def _fits(reference: np.ndarray, dtype) -> bool:
    """True when the float64 ``reference`` is finite in ``dtype`` (the result's float dtype)."""
    dtype = jnp.result_type(dtype)  # what jax actually computes in (float64 -> float32 w/o x64)
    return bool(np.all(np.abs(reference) <= np.finfo(dtype).max))


def _check_math(out, reference, inputs) -> None:
    """Pure math: shape as the reference; finite whenever inputs are finite and it fits."""
    out = np.asarray(out)
    assert out.shape == reference.shape, (out.shape, reference.shape)
    if _finite(*inputs) and _fits(reference, out.dtype):
        assert np.all(np.isfinite(out)), (out, reference)


# -------------------------------------------------------------------------------------- losses

@_settings(60)
@given(st.data())
def test_mse(draw):
    _case("mse")
    p = draw.draw(hostile())
    t = draw.draw(st.one_of(hostile(shape=p.shape), hostile()))
    out = _call(losses.mse, p, t, names=("predictions", "targets"))
    if out is not _REFUSED:
        with np.errstate(all="ignore"):
            err = np.square(p.astype(np.float64) - t.astype(np.float64))
        reference = err if err.ndim <= 1 else err.mean(-1)
        _check_math(out, reference, (p, t))


@_settings(60)
@given(st.data())
def test_sigmoid_binary_cross_entropy(draw):
    _case("sigmoid_bce")
    logits = draw.draw(hostile())
    labels = draw.draw(st.one_of(hostile(shape=logits.shape, dtypes=FLOAT_DTYPES,
                                         elements=st.sampled_from([0.0, 1.0, 0.5])),
                                 hostile()))
    out = _call(losses.sigmoid_binary_cross_entropy, logits, labels, names=("logits", "labels"))
    if out is not _REFUSED:
        x, z = logits.astype(np.float64), labels.astype(np.float64)
        with np.errstate(all="ignore"):
            reference = np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))
        _check_math(out, reference, (logits, labels))


@_settings(60)
@given(st.data())
def test_softmax_cross_entropy_with_integer_labels(draw):
    _case("softmax_ce_int")
    logits = draw.draw(hostile())
    batch = logits.shape[:-1] if logits.ndim else ()
    labels = draw.draw(st.one_of(hnp.arrays(np.int32, batch, elements=st.integers(-1, 4)),
                                 hostile()))
    out = _call(losses.softmax_cross_entropy_with_integer_labels, logits, labels,
                names=("logits", "labels"))
    if out is not _REFUSED:
        x = logits.astype(np.float64)
        with np.errstate(all="ignore"):
            m = x.max(-1, keepdims=True)
            lse = (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]
            reference = lse - np.take_along_axis(x, labels[..., None].astype(int), -1)[..., 0]
        _check_math(out, reference, (logits,))


@_settings(50)
@given(st.data())
def test_entropy_and_kl(draw):
    _case("entropy_kl")
    p = draw.draw(st.one_of(hostile(), hnp.arrays(np.float32, st.just((3, 4)),
                                                   elements=st.floats(0, 1, width=32)),
                            _distributions((3, 4))))
    q = draw.draw(st.one_of(hostile(shape=p.shape), st.just(p)))
    for fn, args in ((losses.entropy, (p,)), (losses.kl_divergence, (p, q))):
        out = _call(fn, *args, names=("p", "q"))
        if out is not _REFUSED:
            assert np.asarray(out).shape == p.shape[:-1]
            assert _finite(out), (fn.__name__, p, q, out)


# ------------------------------------------------------------------------------------- metrics

@_settings(50)
@given(st.data())
def test_accuracy_log_loss(draw):
    _case("accuracy_log_loss")
    n = draw.draw(st.integers(0, 5))
    scores = draw.draw(st.one_of(hostile(shape=st.sampled_from([(n, 3), (n,), (n, 1)]),
                                         elements=MOSTLY_FINITE),
                                 hnp.arrays(np.float32, (n, 2),
                                            elements=st.sampled_from([0.0, 0.5, 1.0])),
                                 hostile()))
    y = draw.draw(st.one_of(_labels(n, 0, 2), hostile()))
    for fn, arg in ((metrics.accuracy, "logits_or_scores"), (metrics.log_loss, "probabilities")):
        out = _call(fn, scores, y, names=(arg, "y"))
        _must_refuse_nonfinite(out, scores=scores)
        if out is not _REFUSED:
            # log_loss is documented to give +inf when the true class has probability 0.
            value = float(out)
            ok = value >= 0 if fn is metrics.log_loss else np.isfinite(value)
            assert np.asarray(out).shape == () and ok, (fn.__name__, scores, y, out)


@_settings(50)
@given(st.data())
def test_roc_auc(draw):
    _case("roc_auc")
    n = draw.draw(st.integers(0, 6))
    scores = draw.draw(st.one_of(hostile(shape=(n,), elements=MOSTLY_FINITE), hostile(),
                                 hnp.arrays(np.float32, (n,), elements=FINITE)))
    y = draw.draw(st.one_of(_labels(n, 0, 1), _labels(n), hostile(),
                            st.just(np.arange(n, dtype=np.int32) % 2)))  # both classes if n >= 2
    out = _call(metrics.roc_auc, y, scores, names=("y_true", "scores"))
    _must_refuse_nonfinite(out, scores=scores)
    if out is not _REFUSED:
        assert np.asarray(out).shape == () and 0 <= float(out) <= 1


@_settings(40)
@given(st.data())
def test_confusion_matrix(draw):
    _case("confusion_matrix")
    n = draw.draw(st.integers(0, 5))
    if draw.draw(st.booleans()):  # well-formed: labels in range of the class count
        k = draw.draw(st.integers(2, 4))
        y_true, y_pred = draw.draw(_labels(n, 0, 1)), draw.draw(_labels(n, 0, 1))
    else:
        k = draw.draw(st.one_of(st.integers(-1, 4), st.sampled_from([2.0, np.nan, True, "3"])))
        y_true = draw.draw(st.one_of(_labels(n), hostile()))
        y_pred = draw.draw(st.one_of(_labels(n), hostile()))
    out = _call(metrics.confusion_matrix, y_true, y_pred, k,
                names=("y_true", "y_pred", "n_classes"))
    if out is not _REFUSED:
        assert np.asarray(out).shape == (k, k) and int(np.sum(out)) == n


@_settings(40)
@given(st.data())
def test_expected_calibration_error(draw):
    _case("ece")
    n = draw.draw(st.integers(0, 5))
    probs = draw.draw(st.one_of(
        hostile(shape=(n, 2)),
        hnp.arrays(np.float32, (n, 2), elements=st.sampled_from([0.0, 0.5, 1.0])), hostile(),
        _distributions((n, 2))))
    y = draw.draw(st.one_of(_labels(n, 0, 1), hostile()))
    n_bins = draw.draw(st.sampled_from([15, 1, 0, -2, 2.5, np.nan, None]))
    out = _call(uncertainty.expected_calibration_error, probs, y, n_bins=n_bins,
                names=("probs", "y", "n_bins"))
    _must_refuse_nonfinite(out, probs=probs)
    if out is not _REFUSED:
        assert np.asarray(out).shape == () and 0 <= float(out) <= 1


# ---------------------------------------------------------------------------------------- data

@_settings(40)
@given(st.data())
def test_one_hot(draw):
    _case("one_hot")
    y = draw.draw(st.one_of(hnp.arrays(np.int32, SHAPES, elements=st.integers(-1, 4)),
                            hostile()))
    k = draw.draw(st.one_of(st.integers(-1, 5), st.sampled_from([2.0, np.inf, None])))
    out = _call(data.one_hot, y, k, names=("y", "n_classes"))
    if out is not _REFUSED:
        assert np.asarray(out).shape == (*y.shape, k)
        assert np.array_equal(np.asarray(out).sum(-1), np.ones(y.shape))


@_settings(40)
@given(st.data())
def test_fit_standardizer(draw):
    _case("fit_standardizer")
    x = draw.draw(st.one_of(_matrix(), hostile()))
    out = _call(data.fit_standardizer, x, names=("x",))
    _must_refuse_nonfinite(out, x=x)
    if out is not _REFUSED:
        assert out.mean.shape == x.shape[1:] and out.std.shape == x.shape[1:]
        with np.errstate(all="ignore"):
            reference = np.stack([x.astype(np.float64).mean(0), x.astype(np.float64).std(0)])
        if _fits(reference, x.dtype):
            assert _finite(out.mean, out.std) and np.all(np.asarray(out.std) > 0), (x, out)


@_settings(40)
@given(st.data())
def test_train_test_split(draw):
    _case("train_test_split")
    x = draw.draw(st.one_of(_matrix(), hostile()))
    n = x.shape[0] if x.ndim else 0
    y = draw.draw(st.one_of(_labels(n, 0, 2), hostile()))
    test_size = draw.draw(st.sampled_from([0.25, 1, 0.0, 1.0, -1, np.nan, 0.5]))
    stratify = draw.draw(st.booleans())
    out = _call(data.train_test_split, jax.random.key(0), x, y, test_size=test_size,
                stratify=stratify, names=("x", "y", "test_size", "stratify"))
    _must_refuse_nonfinite(out, x=x)
    if out is not _REFUSED:
        x_tr, y_tr, x_te, y_te = out
        assert x_tr.shape[0] + x_te.shape[0] == n and x_tr.shape[1:] == x.shape[1:]
        assert y_tr.shape[0] == x_tr.shape[0] and y_te.shape[0] == x_te.shape[0]


# -------------------------------------------------------------------------- features / linear

@_settings(40)
@given(st.data())
def test_polynomial_features(draw):
    _case("polynomial_features")
    x = draw.draw(st.one_of(_matrix(), hostile()))
    degree = draw.draw(st.sampled_from([1, 2, 3, 0, -1, 2.0, None]))
    out = _call(features.polynomial_features, x, degree, names=("x", "degree"))
    _must_refuse_nonfinite(out, x=x)
    if out is not _REFUSED:
        assert np.asarray(out).shape[0] == x.shape[0]


@_settings(50)
@given(st.data())
def test_ridge_and_least_squares(draw):
    _case("ridge_least_squares")
    x = draw.draw(st.one_of(_matrix(), hostile()))
    n = x.shape[0] if x.ndim else 0
    y = draw.draw(st.one_of(hostile(shape=(n,), dtypes=(x.dtype.type,), elements=MOSTLY_FINITE),
                            hostile()))
    lam = draw.draw(st.sampled_from([1.0, 0.0, -1.0, np.inf, np.nan, 1e30]))
    d = x.shape[1] if x.ndim == 2 else None
    for fn, args, names in ((linear.ridge, (x, y, lam), ("x", "y", "lam")),
                            (linear.least_squares, (x, y), ("x", "y"))):
        out = _call(fn, *args, names=names)
        _must_refuse_nonfinite(out, x=x, y=y)
        if out is not _REFUSED:
            assert np.asarray(out["w"]).shape == (d, *y.shape[1:])
            if _fits(x.astype(np.float64) ** 2, x.dtype) and _fits(y.astype(np.float64) ** 2,
                                                                    x.dtype):
                assert _finite(out["w"], out["b"]), (fn.__name__, x, y, lam, out)


# ---------------------------------------------------------------------------------------- nn

_DENSE = nn.dense(3)
_CONV = nn.conv1d(2, 3)
_MLP = nn.mlp((4,), 2)
_DENSE_PARAMS = _DENSE.init(jax.random.key(0), (4,))[1]
_CONV_PARAMS = _CONV.init(jax.random.key(0), (6, 2))[1]
_MLP_PARAMS = _MLP.init(jax.random.key(0), (4,))[1]


def _dense_out(x_shape, out_features):
    # dense and mlp are documented on [..., in_features]: leading axes are batch axes.
    return (*x_shape[:-1], out_features) if len(x_shape) >= 1 and x_shape[-1] == 4 else None


def _conv_out(x_shape):
    # conv1d(2, 3), no padding, on [batch, length, 2] with length >= 3: [batch, length - 2, 2].
    ok = len(x_shape) == 3 and x_shape[2] == 2 and x_shape[1] >= 3
    return (x_shape[0], x_shape[1] - 2, 2) if ok else None


@_settings(60)
@given(st.data())
def test_layer_apply(draw):
    # Layers are pure math: NaN in may give NaN out; a wrong shape must be refused, not broadcast.
    _case("layer_apply")
    layer, params, good, expected = draw.draw(st.sampled_from([
        (_DENSE, _DENSE_PARAMS, (4,), lambda s: _dense_out(s, 3)),
        (_CONV, _CONV_PARAMS, (6, 2), _conv_out),
        (_MLP, _MLP_PARAMS, (4,), lambda s: _dense_out(s, 2))]))
    shape = draw.draw(st.one_of(st.sampled_from([(2, *good), (0, *good)]), SHAPES))
    x = draw.draw(hostile(shape=shape, dtypes=FLOAT_DTYPES + (np.int32,)))
    out = _call(layer.apply, params, x, names=("x", "params", "inputs"))
    if out is not _REFUSED:
        assert np.asarray(out).shape == expected(x.shape), (x.shape, np.asarray(out).shape)
        if _finite(x) and np.all(np.abs(x) < 1e3):
            assert _finite(out)


# ------------------------------------------------------------------------------ train / robust

_CE = "softmax_cross_entropy_with_integer_labels"


@_settings(15)
@given(st.data())
def test_fit_and_evaluate(draw):
    _case("fit_evaluate")
    n = draw.draw(st.integers(0, 4))
    x = draw.draw(st.one_of(hostile(shape=(n, 4), dtypes=(np.float32,), elements=MOSTLY_FINITE),
                            hostile()))
    y = draw.draw(st.one_of(_labels(n, 0, 1), hostile()))
    batch_size = draw.draw(st.sampled_from([2, 0, 100, 1.5]))
    out = _call(jl.fit, _MLP.apply, _MLP_PARAMS, x, y, loss=_CE, optimizer=optax.sgd(0.1),
                key=jax.random.key(0), batch_size=batch_size, epochs=1,
                names=("x", "y", "batch_size", "apply_fn", "params"))
    _must_refuse_nonfinite(out, x=x)
    if out is not _REFUSED:
        assert _finite(*jax.tree.leaves(out.params))
    out = _call(jl.evaluate, _MLP.apply, _MLP_PARAMS, x, y, loss=_CE,
                names=("x", "y", "apply_fn", "params"))
    _must_refuse_nonfinite(out, x=x)
    if out is not _REFUSED and np.all(np.abs(x) < 1e3):
        # Finite but huge x (3e38) overflows inside the MLP (inf - inf = NaN): model arithmetic,
        # not the evaluator's; fit's nan_guard above still keeps its params finite.
        assert _finite(out["loss"], out["accuracy"])


@_settings(30)
@given(st.data())
def test_fgsm(draw):
    _case("fgsm")
    n = draw.draw(st.integers(0, 3))
    x = draw.draw(st.one_of(hostile(shape=(n, 4), dtypes=(np.float32,), elements=MOSTLY_FINITE),
                            hostile()))
    y = draw.draw(st.one_of(_labels(n, 0, 2), hostile()))
    eps = draw.draw(st.one_of(
        st.sampled_from([0.1, 0.0, -0.1, np.nan, np.inf, 1e30, 1e300, True, None, "0.1"]),
        hostile(dtypes=FLOAT_DTYPES)))
    out = _call(robust.fgsm, _MLP.apply, _MLP_PARAMS, x, y, eps=eps,
                names=("x", "y", "eps", "apply_fn"))
    _must_refuse_nonfinite(out, x=x, eps=np.asarray(eps, float) if _numeric(eps) else 0.0)
    if out is not _REFUSED:
        eps_shape = () if np.ndim(eps) == 0 else (len(eps),)
        assert np.asarray(out).shape == (*eps_shape, *x.shape)
        eps_max = float(np.max(np.asarray(eps, np.float64)))
        if _fits(np.abs(x).max() + eps_max, np.float32):
            assert _finite(out), (x, eps, out)


def _numeric(value) -> bool:
    return isinstance(value, (int, float, np.ndarray)) and not isinstance(value, bool)


# ------------------------------------------------------------------- regressions found above

_F16_EMPTY = np.zeros((1, 0), np.float16)
_F32 = np.ones((3, 2), np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda: losses.softmax_cross_entropy_with_integer_labels(np.zeros((0, 0), np.float16),
                                                              np.zeros(0, np.int32)),
     ValueError, "`logits` must have a class axis of size >= 1"),
    (lambda: losses.entropy(np.zeros(0, np.float16)), ValueError,
     "`p` must have a class axis of size >= 1"),
    (lambda: features.polynomial_features(_F16_EMPTY, 1), ValueError, "`x` has no features"),
    (lambda: metrics.log_loss(_F16_EMPTY, np.zeros(0, np.int32)), ValueError,
     "`probabilities` has shape \\(1, 0\\): no class column"),
    (lambda: linear.ridge(_F32.astype(np.float16), np.ones(3, np.float16), 1.0), TypeError,
     "`x` must be float32 or float64"),
    (lambda: linear.least_squares(_F32.astype(np.float16), np.ones(3, np.float16)), TypeError,
     "`x` must be float32 or float64"),
    (lambda: nn.conv1d(2, 3).apply(_CONV_PARAMS, np.zeros((0, 0, 2), np.float32)), ValueError,
     "`x` has input size 0"),
    (lambda: jl.fit(_MLP.apply, _MLP_PARAMS, np.zeros((1, 4), np.float32), np.float16(0),
                    loss=_CE, optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=1,
                    epochs=1), ValueError, r"`y` is a scalar \(shape \(\)\)"),
    (lambda: data.train_test_split(jax.random.key(0), np.array([[np.nan], [1.0], [2.0], [3.0]]),
                                   np.array([0, 1, 0, 1]), test_size=0.5),
     ValueError, "`x` contains 1 NaN or inf"),
    (lambda: data.fit_standardizer(np.array([[1e300], [1.0]])), ValueError,
     "`x` holds 1e[+]300, beyond float32's range"),
])
def test_found_bugs_now_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fit_standardizer_huge_finite_values_do_not_overflow():
    # Found above: the float32 mean of [3e38, 3e38] summed to inf. Exact: mean 3e38, std 0 -> 1
    # (constant feature); and [3e38, -3e38]: mean 0, std 3e38 (tolerance: float32 rounding).
    stats = data.fit_standardizer(np.array([[3e38, 3e38], [3e38, -3e38]], np.float32))
    np.testing.assert_allclose(stats.mean, [3e38, 0.0], rtol=1e-6)
    np.testing.assert_allclose(stats.std, [1.0, 3e38], rtol=1e-6)


# ---------------------------------------------------------------------------------- summary

def test_zz_case_count():
    # Runs last (file order). A property is only as good as the examples that reach each of its
    # branches: every property must have had some calls accepted (their result checked against
    # the contract) and some refused (the error message checked). A strategy that never yields a
    # valid input, or a validation that refuses everything, fails here.
    names = {"mse", "sigmoid_bce", "softmax_ce_int", "entropy_kl", "accuracy_log_loss", "roc_auc",
             "confusion_matrix", "ece", "one_hot", "fit_standardizer", "train_test_split",
             "polynomial_features", "ridge_least_squares", "layer_apply", "fit_evaluate", "fgsm"}
    if set(_CASES) != names:
        pytest.skip("run the whole file to count the cases")
    print(f"\nhostile-input cases tried: {sum(_CASES.values())} "
          f"{ {name: dict(outcomes) for name, outcomes in _OUTCOMES.items()} }")
    one_sided = {name: dict(outcomes) for name, outcomes in _OUTCOMES.items()
                 if outcomes["accepted"] < 1 or outcomes["refused"] < 1}
    assert not one_sided, f"properties that never reached one of their branches: {one_sided}"
