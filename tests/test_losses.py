"""Tests for jaxlearn.losses: gradients by finite differences, values against float64 NumPy,
stability at logits of +-1e4, the information-theory identities, and bad inputs.

Float32 tolerances: a loss is a handful of float32 operations (exp, log, a sum over <= 10 classes)
whose relative error is a few ulps of 6e-8, so values are compared with rtol=1e-5 (atol=1e-6 for
values near 0, where log of a number close to 1 loses relative precision).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxlearn import losses

RTOL = 1e-5
ATOL = 1e-6
# check_grads in float64 with a central-difference step of 1e-6: truncation ~eps^2 |f'''| ~ 1e-12,
# round-off ~1e-16 / eps = 1e-10 (times |f| <= ~10 here), so 1e-6 is tight yet safe.
GRAD_TOL = 1e-6
GRAD_EPS = 1e-6


# The numerical tests call the losses through jax.jit: one XLA compilation per input shape
# instead of one per primitive, about 5x less CPU. Eager calls run in the bad-input table (the
# value checks only run eagerly) and in test_jit_equals_eager.
jitted = SimpleNamespace(**{name: jax.jit(getattr(losses, name)) for name in (
    "mse", "binary_cross_entropy", "sigmoid_binary_cross_entropy", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "entropy", "cross_entropy", "kl_divergence")})


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _softmax64(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _distributions(seed: int, shape, dtype=np.float32) -> np.ndarray:
    """Random distributions over the last axis, all entries > 0."""
    return _softmax64(2.0 * _rng(seed).normal(size=shape)).astype(dtype)


# ------------------------------------------------------------------------------- gradients

def _grad_cases():
    """(name, function of the differentiated arguments, those arguments in float64)."""
    rng = _rng(0)
    logits = rng.normal(size=(4, 5))
    soft_labels = _softmax64(rng.normal(size=(4, 5)))
    int_labels = rng.integers(0, 5, 4)
    p, q = _softmax64(rng.normal(size=(3, 4))), _softmax64(rng.normal(size=(3, 4)))
    params = {"dense": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)},
              "out": (rng.normal(size=(2, 2)),)}
    return {
        "mse_1d": (losses.mse, (rng.normal(size=6), rng.normal(size=6))),
        "mse_2d": (losses.mse, (rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))),
        "binary_cross_entropy": (lambda prob: losses.binary_cross_entropy(prob, soft_labels),
                                 (rng.uniform(0.1, 0.9, size=(4, 5)),)),
        "sigmoid_binary_cross_entropy": (losses.sigmoid_binary_cross_entropy,
                                         (logits, rng.uniform(size=(4, 5)))),
        "softmax_cross_entropy": (losses.softmax_cross_entropy, (logits, soft_labels)),
        "softmax_cross_entropy_with_integer_labels": (
            lambda z: losses.softmax_cross_entropy_with_integer_labels(z, int_labels), (logits,)),
        "entropy": (losses.entropy, (p,)),
        "entropy_from_logits": (losses.entropy_from_logits, (logits,)),
        "kl_divergence_from_logits": (losses.kl_divergence_from_logits,
                                      (logits, rng.normal(size=(4, 5)))),
        # Saturated rows (gaps of 30 and 60): the rewritten losses are smooth there too.
        "softmax_cross_entropy_saturated": (
            lambda z: losses.softmax_cross_entropy(z, np.eye(3)[[0, 2]]),
            (np.array([[30.0, 0.0, -1.0], [-60.0, 1.0, 0.5]]),)),
        "integer_labels_saturated": (
            lambda z: losses.softmax_cross_entropy_with_integer_labels(z, np.array([0, 2])),
            (np.array([[30.0, 0.0, -1.0], [-60.0, 1.0, 0.5]]),)),
        "cross_entropy": (losses.cross_entropy, (p, q)),
        "kl_divergence": (losses.kl_divergence, (p, q)),
        "l2_penalty": (losses.l2_penalty, (params,)),
        "l2_penalty_with_biases": (lambda t: losses.l2_penalty(t, include_biases=True), (params,)),
    }


GRAD_NAMES = list(_grad_cases())


def _check_loss_grads(name: str, order: int):
    with jax.enable_x64(True):
        fn, args = _grad_cases()[name]
        # jit: the distribution checks look at values only outside jit, and a finite-difference
        # step moves p off the simplex by 1e-6 (harmless to the formula, but it would be refused).
        check_grads(jax.jit(fn), args, order=order, modes=("fwd", "rev"),
                    atol=GRAD_TOL, rtol=GRAD_TOL, eps=GRAD_EPS)


@pytest.mark.parametrize("name", GRAD_NAMES)
def test_first_order_gradients_match_finite_differences(name):
    _check_loss_grads(name, order=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", GRAD_NAMES)
def test_second_order_gradients_match_finite_differences(name):
    _check_loss_grads(name, order=2)


def test_gradients_have_the_closed_forms():
    # d CE / dz = softmax(z) - y and d BCE / dz = sigmoid(z) - y: no vanishing factor.
    rng = _rng(1)
    logits = rng.normal(size=(4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 4)
    grad = jax.jit(jax.grad(
        lambda z: losses.softmax_cross_entropy_with_integer_labels(z, labels).sum()))
    np.testing.assert_allclose(grad(logits), _softmax64(logits) - np.eye(5)[labels],
                               rtol=RTOL, atol=ATOL)
    z = rng.normal(size=6).astype(np.float32)
    y = rng.integers(0, 2, 6)
    grad = jax.jit(jax.grad(lambda z: losses.sigmoid_binary_cross_entropy(z, y).sum()))
    np.testing.assert_allclose(grad(z), 1 / (1 + np.exp(-z.astype(np.float64))) - y,
                               rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------- exact at saturation (issue 15)

def _exact_ce(z, label):
    """``logsumexp(z) - z[label]`` and its gradient ``softmax(z) - onehot(label)`` in 50-digit
    decimal arithmetic (the oracle: float64 itself rounds ``p_y`` to 1 past a gap of ~37)."""
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 50
        d = [decimal.Decimal(float(v)) for v in z]
        e = [(v - d[label]).exp() for v in d]
        total = sum(e)
        value = total.ln()
        p = [v / total for v in e]
        grad = [float(pk) for pk in p]
        grad[label] = -float(sum(pk for k, pk in enumerate(p) if k != label))
        return float(value), np.array(grad)


def _saturated_rows():
    """Rows with the label's logit ahead by 0 to 100 (and behind by as much), 3 classes."""
    rows, labels = [], []
    for gap in (0.0, 1.0, 5.0, 17.0, 21.68, 30.0, 50.0, 80.0, 100.0):
        rows += [[gap, 0.0, -0.5], [-gap, 0.0, -0.5]]
        labels += [0, 0]
    return np.array(rows, np.float32), np.array(labels)


def test_cross_entropy_value_and_gradient_exact_at_saturation():
    # float32 values and gradients equal the exact ones to float32 precision (rtol 1e-5 for a few
    # ulps; atol float32's smallest normal, below which values are subnormal, ~2% steps at 1e-44).
    z, y = _saturated_rows()
    exact = [_exact_ce(row.astype(np.float64), label) for row, label in zip(z, y)]
    values = np.array([v for v, _ in exact])
    grads = np.stack([g for _, g in exact])
    tiny = np.finfo(np.float32).tiny
    onehot = np.eye(3, dtype=np.float32)[y]
    for name, fn in (("integer", lambda z: losses.softmax_cross_entropy_with_integer_labels(z, y)),
                     ("one-hot", lambda z: losses.softmax_cross_entropy(z, onehot))):
        np.testing.assert_allclose(jax.jit(fn)(z), values, rtol=RTOL, atol=tiny, err_msg=name)
        got = jax.jit(jax.grad(lambda z, fn=fn: fn(z).sum()))(z)
        np.testing.assert_allclose(got, grads, rtol=RTOL, atol=tiny, err_msg=name)
        # The true-class gradient is never 0 while it is a normal float32 (XLA's CPU flushes
        # subnormals to 0, so past a gap of ~87 it is 0 and so is the exact float32 value).
        normal = np.abs(grads[:, 0]) > tiny
        assert normal.sum() >= 14 and np.all(got[normal, 0] < 0), (name, got[:, 0])
    # The textbook formula loses it: at a gap of 21.68, softmax - onehot gives 0 for the label.
    naive = jax.grad(lambda z: -jax.nn.log_softmax(z)[0])(np.float32([21.68, 0.0, -0.5]))
    assert naive[0] == 0.0


def test_sigmoid_bce_and_logit_entropies_exact_at_saturation():
    z = np.array([-100.0, -40.0, -21.68, 0.0, 21.68, 40.0, 80.0], np.float32)
    z64 = z.astype(np.float64)
    tiny = np.finfo(np.float32).tiny
    for y in (0.0, 1.0):
        labels = np.full_like(z, y)
        grad = jax.jit(jax.grad(
            lambda z, labels=labels: losses.sigmoid_binary_cross_entropy(z, labels).sum()))
        # sigma(z) - y written without cancellation: -sigma(-z) for y = 1.
        exact = 1 / (1 + np.exp(-z64)) if y == 0 else -1 / (1 + np.exp(z64))
        np.testing.assert_allclose(grad(z), exact, rtol=RTOL, atol=tiny)
    # Entropy and KL from logits: finite gradients where a probability underflows to 0, and the
    # values of the float64 formulas.
    logits = np.array([[0.0, 200.0, -5.0], [1.0, 2.0, 3.0]], np.float32)
    other = np.array([[3.0, -200.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    g_h = jax.grad(lambda a: losses.entropy_from_logits(a).sum())(logits)
    g_kl = jax.grad(lambda a, b: losses.kl_divergence_from_logits(a, b).sum(), (0, 1))(
        logits, other)
    assert np.all(np.isfinite(g_h)) and all(np.all(np.isfinite(g)) for g in g_kl)
    naive = jax.grad(lambda a: losses.entropy(jax.nn.softmax(a)).sum())(logits)
    assert np.isnan(naive).any()  # the probability version cannot do this
    p, q = _softmax64(logits.astype(np.float64)), _softmax64(other.astype(np.float64))
    log_p = np.log(np.maximum(p, 1e-300))
    np.testing.assert_allclose(losses.entropy_from_logits(logits), -(p * log_p).sum(-1),
                               rtol=RTOL, atol=ATOL)
    kl = (p * (log_p - np.log(np.maximum(q, 1e-300)))).sum(-1)
    np.testing.assert_allclose(losses.kl_divergence_from_logits(logits, other), kl, rtol=RTOL,
                               atol=ATOL)


# ---------------------------------------------------------------- values against NumPy float64

def test_values_equal_float64_numpy():
    rng = _rng(2)
    z = rng.normal(size=(6, 5)).astype(np.float32) * 3
    z64 = z.astype(np.float64)
    log_softmax = z64 - np.log(np.exp(z64).sum(-1, keepdims=True))
    soft = _distributions(3, (6, 5))
    labels = rng.integers(0, 5, 6)
    y01 = rng.integers(0, 2, (6, 5))
    prob = rng.uniform(0.05, 0.95, size=(6, 5)).astype(np.float32)
    prob64 = prob.astype(np.float64)
    targets = rng.normal(size=(6, 5)).astype(np.float32)
    sigmoid = 1 / (1 + np.exp(-z64))
    cases = [
        (jitted.mse(z, targets), np.mean((z64 - targets) ** 2, axis=-1)),
        (jitted.mse(z[:, 0], targets[:, 0]), (z64[:, 0] - targets[:, 0]) ** 2),
        (jitted.binary_cross_entropy(prob, y01),
         -(y01 * np.log(prob64) + (1 - y01) * np.log(1 - prob64))),
        (jitted.sigmoid_binary_cross_entropy(z, y01),
         -(y01 * np.log(sigmoid) + (1 - y01) * np.log(1 - sigmoid))),
        (jitted.softmax_cross_entropy(z, soft), -np.sum(soft * log_softmax, axis=-1)),
        (jitted.softmax_cross_entropy_with_integer_labels(z, labels),
         -log_softmax[np.arange(6), labels]),
    ]
    for got, want in cases:
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_integer_labels_equal_one_hot_labels():
    rng = _rng(4)
    logits = rng.normal(size=(3, 7, 10)).astype(np.float32) * 4  # batch shape (3, 7)
    labels = rng.integers(0, 10, (3, 7))
    one_hot = np.eye(10, dtype=np.float32)[labels]
    np.testing.assert_allclose(jitted.softmax_cross_entropy_with_integer_labels(logits, labels),
                               jitted.softmax_cross_entropy(logits, one_hot), rtol=RTOL, atol=ATOL)


def test_bce_from_logits_equals_bce_of_sigmoid_at_moderate_logits():
    z = np.linspace(-5.0, 5.0, 41)
    y = np.tile([0.0, 1.0, 0.3], 14)[:41]  # hard and soft labels
    with jax.enable_x64(True):
        from_logits = jitted.sigmoid_binary_cross_entropy(z, y)
        from_probabilities = jitted.binary_cross_entropy(jax.nn.sigmoid(z), y)
    # float64; sigmoid(5) = 0.9933 is far inside the eps = 1e-7 clip, and log1p(-p) loses
    # ~1e-16 / (1 - p) ~ 2e-14 relative at z = 5.
    np.testing.assert_allclose(from_logits, from_probabilities, rtol=1e-10)


def test_jit_equals_eager():
    rng = _rng(13)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    # XLA may fuse the float32 ops differently under jit: a few ulps.
    np.testing.assert_allclose(
        jitted.softmax_cross_entropy_with_integer_labels(logits, labels),
        losses.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-6, atol=1e-7)
    p = _distributions(14, (8, 5))
    np.testing.assert_allclose(jitted.entropy(p), losses.entropy(p), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- stability

def test_softmax_cross_entropy_stable_at_huge_logits():
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [1e4, 0.0], [0.0, 0.0]], np.float32)
    labels = np.array([1, 1, 1, 0])
    # logsumexp(z) - z_label: the wrong class wins by 2e4, 0 (right class wins), 1e4, log 2.
    expected = np.array([2e4, 0.0, 1e4, np.log(2.0)])
    # dCE/dz = softmax(z) - onehot: saturated rows give exactly +-1 or 0.
    expected_grad = np.array([[1.0, -1.0], [0.0, 0.0], [1.0, -1.0], [-0.5, 0.5]])
    one_hot = np.eye(2, dtype=np.float32)[labels]
    for fn in (lambda z: jitted.softmax_cross_entropy_with_integer_labels(z, labels),
               lambda z: jitted.softmax_cross_entropy(z, one_hot)):
        values = fn(logits)
        grads = jax.jit(jax.grad(lambda z, fn=fn: fn(z).sum()))(logits)
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
        np.testing.assert_allclose(values, expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grads, expected_grad, rtol=RTOL, atol=ATOL)


def test_sigmoid_binary_cross_entropy_stable_at_huge_logits():
    z = np.array([1e4, -1e4, 1e4, -1e4, 0.0], np.float32)
    y = np.array([0, 1, 1, 0, 1], np.float32)
    # Confidently wrong: loss = |z| (softplus(1e4) = 1e4); confidently right: 0; z = 0: log 2.
    expected = np.array([1e4, 1e4, 0.0, 0.0, np.log(2.0)])
    values = jitted.sigmoid_binary_cross_entropy(z, y)
    grads = jax.jit(jax.grad(lambda z: jitted.sigmoid_binary_cross_entropy(z, y).sum()))(z)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grads, [1.0, -1.0, 0.0, 0.0, -0.5], rtol=RTOL, atol=ATOL)


# -------------------------------------------------------------------- information theory

@pytest.mark.parametrize("n_classes", [1, 2, 5, 10])
def test_entropy_of_uniform_is_log_k(n_classes):
    uniform = np.full((n_classes,), 1.0 / n_classes, np.float32)
    np.testing.assert_allclose(jitted.entropy(uniform), np.log(n_classes), rtol=RTOL, atol=ATOL)


def test_entropy_bounds_and_float64_reference():
    p = _distributions(5, (200, 6))
    p[:20, 0] = 0.0  # exact zeros: 0 log 0 = 0
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    h = np.asarray(jitted.entropy(p))
    p64 = p.astype(np.float64)
    reference = -np.sum(np.where(p64 > 0, p64 * np.log(np.where(p64 > 0, p64, 1.0)), 0.0), -1)
    np.testing.assert_allclose(h, reference, rtol=RTOL, atol=ATOL)
    assert np.all(h >= 0) and np.all(h <= np.log(6) + ATOL)
    one_hot = np.eye(6, dtype=np.float32)
    np.testing.assert_array_equal(jitted.entropy(one_hot), 0.0)  # certainty: exactly 0


def test_kl_nonnegative_zero_on_diagonal_and_float64_reference():
    p, q = _distributions(6, (300, 4)), _distributions(7, (300, 4))
    kl = np.asarray(jitted.kl_divergence(p, q))
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    np.testing.assert_allclose(kl, np.sum(p64 * np.log(p64 / q64), -1), rtol=RTOL, atol=ATOL)
    assert np.all(kl >= 0)
    # KL(p || p) = sum p log p - p log p. Eagerly the two terms are the same float32 numbers and
    # cancel exactly; under jit XLA fuses them differently and leaves ~1e-8 either side of 0
    # (a few ulps of the terms, |p log p| <= 0.37), hence atol 1e-7 there.
    np.testing.assert_array_equal(losses.kl_divergence(p, p), 0.0)
    np.testing.assert_allclose(jitted.kl_divergence(p, p), 0.0, atol=1e-7)


def test_cross_entropy_is_minimal_at_q_equal_p():
    p = _distributions(8, (1, 5))
    qs = _distributions(9, (2000, 5))
    at_p = float(jitted.cross_entropy(p, p)[0])
    others = np.asarray(jitted.cross_entropy(np.broadcast_to(p, qs.shape), qs))
    # Gibbs: H(p, q) - H(p, p) = KL(p || q) >= 0; float32 slack of a few ulps of H ~ 1.
    assert np.all(others >= at_p - ATOL)
    np.testing.assert_allclose(at_p, jitted.entropy(p)[0], rtol=RTOL)


def test_cross_entropy_equals_entropy_plus_kl():
    p, q = _distributions(10, (100, 7)), _distributions(11, (100, 7))
    np.testing.assert_allclose(jitted.cross_entropy(p, q),
                               jitted.entropy(p) + jitted.kl_divergence(p, q), rtol=RTOL,
                               atol=ATOL)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    np.testing.assert_allclose(jitted.cross_entropy(p, q), -np.sum(p64 * np.log(q64), -1),
                               rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- l2 penalty

def test_l2_penalty_excludes_biases_by_default_and_equals_hand_sum():
    rng = _rng(12)
    params = ({"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)},
              (),
              {"w": rng.normal(size=(2, 4, 5)), "b": rng.normal(size=5)},
              {"w": rng.normal(size=(5, 1))})
    params = jax.tree.map(lambda a: a.astype(np.float32), params)
    weights = sum(np.sum(np.asarray(layer["w"], np.float64) ** 2) for layer in params if layer)
    biases = np.sum(params[0]["b"].astype(np.float64) ** 2) + np.sum(
        params[2]["b"].astype(np.float64) ** 2)
    np.testing.assert_allclose(losses.l2_penalty(params), weights, rtol=RTOL)
    np.testing.assert_allclose(losses.l2_penalty(params, include_biases=True), weights + biases,
                               rtol=RTOL)
    assert float(losses.l2_penalty(())) == 0.0


# ---------------------------------------------------------------------------- get_loss

def test_get_loss_by_name_and_passthrough():
    for name, fn in losses.LOSSES.items():
        assert losses.get_loss(name) is fn
    assert losses.get_loss(losses.mse) is losses.mse


# ------------------------------------------------------------------------------ bad inputs

_Z = np.zeros((4, 10), np.float32)
_P3 = np.array([0.2, 0.3, 0.5], np.float32)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: losses.mse(np.zeros(4, np.float32), np.zeros((4, 1), np.float32)), ValueError,
     r"`predictions` has shape \(4,\) but `targets` has shape \(4, 1\)"),
    (lambda: losses.mse(np.zeros(4, np.int32), np.zeros(4, np.int32)), TypeError,
     "`predictions` must have a floating dtype, got int32"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(_Z, np.array([0, 12, 3, 1])),
     ValueError, "`labels` has label 12 but `n_classes` is 10"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(_Z, np.array([0, -1, 3, 1])),
     ValueError, "`labels` has label -1 but `n_classes` is 10"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(_Z, np.zeros(4, np.float32)),
     TypeError, "`labels` must hold integer class labels, got dtype float32"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(_Z, np.zeros((4, 1), int)),
     ValueError, r"`labels` has shape \(4, 1\) but `logits` has shape \(4, 10\); labels must "
                 r"have shape \(4,\)"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(np.float32(1.0), np.array(0)),
     ValueError, "`logits` must have a class axis"),
    (lambda: losses.softmax_cross_entropy_with_integer_labels(_Z.astype(int), np.zeros(4, int)),
     TypeError, "`logits` must have a floating dtype"),
    (lambda: losses.softmax_cross_entropy(_Z, np.zeros((4, 9), np.float32)), ValueError,
     r"`logits` has shape \(4, 10\) but `labels` has shape \(4, 9\)"),
    (lambda: losses.sigmoid_binary_cross_entropy(np.zeros(3, np.int32), np.zeros(3)), TypeError,
     "`logits` must have a floating dtype"),
    (lambda: losses.sigmoid_binary_cross_entropy(np.zeros(3, np.float32), np.array([0, 1, 2])),
     ValueError, r"`labels` must lie in \[0, 1\], got values in \[0, 2\]"),
    (lambda: losses.binary_cross_entropy(np.array([0.5, 1.5], np.float32), np.array([0, 1])),
     ValueError, r"`probabilities` must lie in \[0, 1\], got values in \[0.5, 1.5\]"),
    (lambda: losses.binary_cross_entropy(np.array([0.5], np.float32), np.array([0, 1])),
     ValueError, r"`probabilities` has shape \(1,\) but `labels` has shape \(2,\)"),
    (lambda: losses.entropy(np.array([0.2, 0.3, 0.4], np.float32)), ValueError,
     r"`p` must be a probability distribution .*sums in \[0.9, 0.9\]"),
    (lambda: losses.kl_divergence(_P3, np.array([-0.1, 0.6, 0.5], np.float32)), ValueError,
     r"`q` must be a probability distribution .*entries in \[-0.1, 0.6\]"),
    (lambda: losses.cross_entropy(_P3, np.full(4, 0.25, np.float32)), ValueError,
     r"`p` has shape \(3,\) but `q` has shape \(4,\)"),
    (lambda: losses.entropy(np.array([0, 1, 0])), TypeError, "`p` must have a floating dtype"),
    (lambda: losses.entropy(np.float32(1.0)), ValueError, "`p` must have a class axis"),
    (lambda: losses.entropy(["a", "b"]), TypeError, "`p` must be a numeric array"),
    (lambda: losses.mse("abc", np.zeros(3)), TypeError, "`predictions` must be an array"),
    (lambda: losses.get_loss("hinge"), ValueError, "`loss` must be one of"),
    (lambda: losses.entropy_from_logits(np.float32(1.0)), ValueError,
     "`logits` must have a class axis"),
    (lambda: losses.kl_divergence_from_logits(_Z, np.zeros((4, 9), np.float32)), ValueError,
     r"`p_logits` has shape \(4, 10\) but `q_logits` has shape \(4, 9\)"),
    (lambda: losses.kl_divergence_from_logits(_Z, _Z.astype(int)), TypeError,
     "`q_logits` must have a floating dtype"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
