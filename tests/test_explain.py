"""Tests for jaxlearn.explain: attribution maps against hand-derived values on linear models,
per-example Jacobians and brute-force loops; integrated-gradients completeness; Spearman against
scipy; the Adebayo et al. sanity checks on a small MLP trained on digits.

Tolerances: everything runs in float32. A gradient of a small model recomputed another way
(jacobian, closed form) agrees to a few ulps of its magnitude (~1, so atol=1e-5); sums of up to 64
such terms in a different order (chunking, loops) add ~64 ulps, hence atol=1e-5 there too. Rank
correlations are Pearson correlations of exact integer (or half-integer) ranks, hence 1e-5.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jaxlearn import data, explain, nn, train

ATOL = 1e-5


def _linear(n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(n_features, n_classes)).astype(np.float32),
              "b": rng.normal(size=n_classes).astype(np.float32)}

    def apply(p, x):
        return x.reshape(x.shape[0], -1) @ p["w"] + p["b"][None, :]

    return apply, params


# One model object for all tests, so compiled functions (keyed on ``apply``) are reused.
_TANH_MLP = nn.serial(nn.flatten(), nn.mlp((16, 16), 4, activation="tanh"))


@functools.cache
def _tanh_mlp(input_shape=(6,)):
    _, params = _TANH_MLP.init(jax.random.key(0), input_shape)
    return _TANH_MLP.apply, params


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def digits_mlp():
    """A ReLU MLP 64-32-10 trained for 150 Adam steps on digits (~97% training accuracy)."""
    x, y = data.load_digits()
    model = nn.mlp((32,), 10)
    _, params = model.init(jax.random.key(0), (64,))
    result = train.fit(model.apply, params, x, y,
                       loss="softmax_cross_entropy_with_integer_labels",
                       optimizer=optax.adam(1e-2), key=jax.random.key(1), batch_size=64,
                       steps=150)
    return model, result.params, x


# ------------------------------------------------------------------------------ gradients

def test_saliency_of_linear_model_is_the_target_weight_column():
    apply, params = _linear()
    x = _x((5, 6))
    target = np.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(explain.saliency(apply, params, x, target=target),
                               params["w"][:, target].T, atol=ATOL)
    np.testing.assert_allclose(explain.gradient_x_input(apply, params, x, target=target),
                               x * params["w"][:, target].T, atol=ATOL)
    # Default target: the predicted class; an int target: that class for every example.
    predicted = np.argmax(x @ params["w"] + params["b"], axis=1)
    np.testing.assert_allclose(explain.saliency(apply, params, x),
                               params["w"][:, predicted].T, atol=ATOL)
    np.testing.assert_allclose(explain.saliency(apply, params, x, target=2),
                               np.broadcast_to(params["w"][:, 2], (5, 6)), atol=ATOL)


def test_saliency_equals_per_example_jacobian_row():
    apply, params = _tanh_mlp(input_shape=(3, 2))
    x = _x((4, 3, 2))
    target = np.array([3, 0, 1, 2])
    got = explain.saliency(apply, params, x, target=target)
    jacobians = jax.vmap(jax.jacobian(lambda xi: apply(params, xi[None])[0]))(x)  # [4, 4, 3, 2]
    np.testing.assert_allclose(got, jacobians[np.arange(4), target], atol=ATOL)


# ------------------------------------------------------------------- integrated gradients

def test_integrated_gradients_is_exact_on_a_linear_model():
    apply, params = _linear()
    x, baseline = _x((4, 6)), _x((6,), seed=2)
    target = np.array([0, 1, 2, 0])
    expected = (x - baseline) * params["w"][:, target].T
    for rule in explain.IG_RULES:
        got = explain.integrated_gradients(apply, params, x, target=target, baseline=baseline,
                                           n_steps=3, rule=rule)
        np.testing.assert_allclose(got, expected, atol=ATOL)


def test_trapezoid_with_one_step_averages_the_end_gradients():
    apply, params = _tanh_mlp()
    x, baseline = _x((3, 6)), _x((3, 6), seed=2)
    target = np.array([0, 1, 2])
    ends = (explain.saliency(apply, params, x, target=target)
            + explain.saliency(apply, params, baseline, target=target)) / 2
    got = explain.integrated_gradients(apply, params, x, target=target, baseline=baseline,
                                       n_steps=1, rule="trapezoid")
    np.testing.assert_allclose(got, (x - baseline) * ends, atol=ATOL)


@pytest.mark.parametrize("rule", explain.IG_RULES)
def test_integrated_gradients_completeness_gap_shrinks_quadratically(rule):
    # A tanh MLP is smooth, so both rules err by O(1/n_steps^2): the gap at 64 steps is below
    # 1e-3 logits (the logit changes are O(1)) and 4x the steps cut it by more than 8x (16x in
    # theory; float32 round-off, ~1e-6 here, keeps it from being exact).
    apply, params = _tanh_mlp()
    x = 2.0 * _x((8, 6))
    gaps = {}
    for n_steps in (16, 64):
        attributions = explain.integrated_gradients(apply, params, x, n_steps=n_steps, rule=rule,
                                                    chunk_size=5)
        gaps[n_steps] = float(jnp.max(jnp.abs(
            explain.completeness_gap(apply, params, x, attributions))))
    change = apply(params, x) - apply(params, jnp.zeros_like(x))
    assert float(jnp.max(jnp.abs(change))) > 0.1      # a non-trivial quantity to recover
    assert gaps[64] < 1e-3
    assert gaps[16] > 8 * gaps[64]


def test_integrated_gradients_does_not_depend_on_chunk_size():
    apply, params = _tanh_mlp()
    x = _x((3, 6))
    runs = [explain.integrated_gradients(apply, params, x, n_steps=20, chunk_size=c)
            for c in (1, 7, 100)]
    for run in runs[1:]:
        np.testing.assert_allclose(run, runs[0], atol=ATOL)


def test_completeness_gap_is_zero_for_exact_attributions():
    apply, params = _linear()
    x = _x((4, 6))
    target = np.array([0, 1, 2, 0])
    exact = x * params["w"][:, target].T          # sums to f(x) - f(0) exactly
    gap = explain.completeness_gap(apply, params, x, exact, target=target)
    np.testing.assert_allclose(gap, np.zeros(4), atol=ATOL)
    shifted = explain.completeness_gap(apply, params, x, exact + 0.5, target=target)
    np.testing.assert_allclose(shifted, np.full(4, 0.5 * 6), atol=ATOL)


# ------------------------------------------------------------------------------ SmoothGrad

def test_smoothgrad_matches_a_loop_over_the_documented_noise():
    apply, params = _tanh_mlp()
    x = _x((3, 6))
    key = jax.random.key(7)
    target = np.array([1, 0, 3])
    got = explain.smoothgrad(key, apply, params, x, target=target, n_samples=5,
                             noise_level=0.2, chunk_size=2)
    sigma = 0.2 * (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True))
    expected = np.zeros_like(x)
    for s in range(5):
        noise = jax.random.normal(jax.random.fold_in(key, s), x.shape)
        expected += np.asarray(explain.saliency(apply, params, x + sigma * noise,
                                                target=target)) / 5
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_smoothgrad_without_noise_is_the_gradient_and_keys_matter():
    apply, params = _tanh_mlp()
    x = _x((3, 6))
    plain = explain.saliency(apply, params, x)
    quiet = explain.smoothgrad(jax.random.key(0), apply, params, x, n_samples=4, noise_level=0.0)
    np.testing.assert_allclose(quiet, plain, atol=ATOL)
    a = explain.smoothgrad(jax.random.key(0), apply, params, x, n_samples=4)
    b = explain.smoothgrad(jax.random.key(0), apply, params, x, n_samples=4)
    c = explain.smoothgrad(jax.random.key(1), apply, params, x, n_samples=4)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3


# ------------------------------------------------------------------------------- occlusion

def _occlusion_reference(apply, params, x, target, window, stride, baseline):
    """The documented rule by brute force: mean drop over the windows covering each position."""
    n_spatial = len(window)
    spatial = x.shape[1:1 + n_spatial]
    ref = np.asarray(apply(params, x))[np.arange(x.shape[0]), target]
    total = np.zeros((x.shape[0], *spatial))
    count = np.zeros(spatial)
    starts = [range(0, s - w + 1, st) for s, w, st in zip(spatial, window, stride)]
    for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, n_spatial):
        region = tuple(slice(c, c + w) for c, w in zip(corner, window))
        hidden = x.copy()
        hidden[(slice(None), *region)] = baseline
        drop = ref - np.asarray(apply(params, hidden))[np.arange(x.shape[0]), target]
        total[(slice(None), *region)] += drop.reshape((-1,) + (1,) * n_spatial)
        count[region] += 1
    mean = total / np.maximum(count, 1)
    return np.broadcast_to(mean.reshape(mean.shape + (1,) * (x.ndim - 1 - n_spatial)), x.shape)


@pytest.mark.parametrize("shape,window,stride", [
    ((3, 9), 3, 2),               # 1-D, no channels, overlapping windows
    ((3, 9, 2), (2,), (3,)),      # 1-D with channels, stride skips positions
    ((3, 5, 6), (2, 3), (1, 2)),  # 2-D, no channels
    ((3, 5, 6, 2), (3, 3), None),  # 2-D with channels, default stride = window
])
def test_occlusion_matches_brute_force(shape, window, stride):
    apply, params = _tanh_mlp(input_shape=shape[1:])
    x = _x(shape)
    target = np.array([0, 1, 2])
    got = explain.occlusion(apply, params, x, window=window, stride=stride, baseline=0.5,
                            target=target, chunk_size=3)       # 3 pads 4 and 8 windows
    win = (window,) if isinstance(window, int) else window
    st = win if stride is None else ((stride,) if isinstance(stride, int) else stride)
    np.testing.assert_allclose(got, _occlusion_reference(apply, params, x, target, win, st, 0.5),
                               atol=ATOL)


def test_occlusion_of_single_features_on_a_linear_model_is_gradient_x_input():
    apply, params = _linear()
    x = _x((4, 6))
    np.testing.assert_allclose(explain.occlusion(apply, params, x, window=1),
                               explain.gradient_x_input(apply, params, x), atol=ATOL)


# ----------------------------------------------------------------------------- Spearman

@pytest.mark.parametrize("ties", [False, True])
def test_spearman_matches_scipy(ties):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 4, 10)).astype(np.float32)
    b = (a + rng.normal(size=a.shape)).astype(np.float32)
    if ties:               # many exact ties: scipy averages their ranks, so do we
        a, b = np.round(a), np.round(b)
    got = explain.spearman_correlation(a, b)
    expected = [stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(5)]
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_spearman_is_one_for_a_monotone_map_and_minus_one_reversed():
    a = _x((2, 30))
    np.testing.assert_allclose(explain.spearman_correlation(a, np.exp(a)), [1, 1], atol=ATOL)
    np.testing.assert_allclose(explain.spearman_correlation(a, -a ** 3), [-1, -1], atol=ATOL)


# -------------------------------------------------------------------------- sanity checks

def test_param_layers_and_randomize_layers():
    model = nn.mlp((20, 20), 3)
    _, params = model.init(jax.random.key(0), (10,))
    layers = explain.param_layers(params)
    assert layers == ["[0][0]", "[1][0]", "[2]"]
    key = jax.random.key(5)
    out = explain.randomize_layers(key, params, ["[1][0]"])
    np.testing.assert_array_equal(out[0][0]["w"], params[0][0]["w"])
    np.testing.assert_array_equal(out[2]["w"], params[2]["w"])
    w, w_new = params[1][0]["w"], out[1][0]["w"]
    assert w_new.shape == w.shape and w_new.dtype == w.dtype
    w, w_new = np.asarray(w), np.asarray(w_new)
    # 400 draws: the sample std of N(0, s^2) is within ~4 / sqrt(2 * 400) = 14% of s, and the
    # correlation with the old weights within ~4 / sqrt(400) = 0.2 of 0.
    np.testing.assert_allclose(w_new.std(), w.std(), rtol=0.15)
    assert abs(np.corrcoef(w.ravel(), w_new.ravel())[0, 1]) < 0.2
    np.testing.assert_array_equal(out[1][0]["b"], np.zeros(20))   # zero spread stays zero


def test_sanity_check_named_methods_agree_on_a_linear_model():
    # On a linear model integrated gradients from 0 is exactly gradient x input and SmoothGrad is
    # exactly the gradient (the gradient is constant), so their rows must agree.
    apply, params = _linear()
    x = _x((5, 6))
    assert explain.param_layers(params) == ["<root>"]
    rows = explain.sanity_check(apply, params, x, jax.random.key(0), absolute=False)
    assert [r["method"] for r in rows] == list(explain.SANITY_METHODS) * 2
    score = {(r["mode"], r["method"]): r["spearman"] for r in rows}
    for mode in explain.SANITY_MODES:
        assert score[(mode, "integrated_gradients")] == pytest.approx(
            score[(mode, "gradient_x_input")], abs=ATOL)
        assert score[(mode, "smoothgrad")] == pytest.approx(score[(mode, "gradient")], abs=ATOL)
        assert -1.0 <= score[(mode, "gradient")] < 0.9


@pytest.mark.slow
def test_sanity_check_randomisation_breaks_gradient_maps(digits_mlp):
    model, params, x = digits_mlp
    rows = explain.sanity_check(model.apply, params, x[:16], jax.random.key(0),
                                methods=("gradient", "gradient_x_input"))
    layers = explain.param_layers(params)        # ["[0][0]", "[1]"]
    assert len(rows) == 2 * len(layers) * 2
    table = {(r["mode"], r["layer"], r["method"]): r for r in rows}
    all_random = table[("cascading", layers[0], "gradient")]
    assert all_random["randomized"] == layers
    # Adebayo et al.'s finding: with every layer randomised, gradient maps keep little of their
    # rank order (here ~0.02) ...
    assert all_random["spearman"] < 0.3
    # ... while gradient x input stays close to the input itself (pixels that are 0 in x are 0
    # in both maps), so its correlation stays high: the check tells the two apart.
    assert table[("cascading", layers[0], "gradient_x_input")]["spearman"] > 0.7
    # Randomising the top layer alone is the same model in both families.
    for method in ("gradient", "gradient_x_input"):
        assert (table[("cascading", layers[-1], method)]["spearman"]
                == table[("independent", layers[-1], method)]["spearman"])


@pytest.mark.slow
def test_sanity_check_gives_one_for_a_method_that_ignores_the_model(digits_mlp):
    model, params, x = digits_mlp
    methods = {"edge_detector": lambda p, xb, t, k: jnp.abs(jnp.diff(xb, axis=1))}
    rows = explain.sanity_check(model.apply, params, x[:8], jax.random.key(0), methods=methods,
                                layers=["[1]"])
    assert [(r["mode"], r["layer"]) for r in rows] == [("cascading", "[1]"),
                                                       ("independent", "[1]")]
    for r in rows:
        assert r["spearman"] == pytest.approx(1.0, abs=ATOL)


# ------------------------------------------------------------------------------ bad inputs

def _bad_calls():
    apply, params = _linear()
    x = _x((4, 6))
    key = jax.random.key(0)
    return [
        (lambda: explain.saliency(apply, params, x[0]), ValueError, "at least 2 dimensions"),
        (lambda: explain.saliency(apply, params, x.astype(np.int32)), TypeError, "floating"),
        (lambda: explain.saliency(apply, params, x, target=3), ValueError, "3 classes"),
        (lambda: explain.saliency(apply, params, x, target=np.array([0, 1])), ValueError,
         r"shape \[batch\] = \(4,\)"),
        (lambda: explain.saliency(apply, params, x, target=np.array([0, 1, 2, 5])), ValueError,
         "label 5"),
        (lambda: explain.saliency(apply, params, _x((4, 7))), (TypeError, ValueError),
         "`apply` failed"),
        (lambda: explain.integrated_gradients(apply, params, x, n_steps=0), ValueError,
         "`n_steps` must be > 0"),
        (lambda: explain.integrated_gradients(apply, params, x, n_steps=2.5), TypeError,
         "`n_steps` must be an int"),
        (lambda: explain.integrated_gradients(apply, params, x, rule="simpson"), ValueError,
         "`rule` must be one of"),
        (lambda: explain.integrated_gradients(apply, params, x, chunk_size=0), ValueError,
         "`chunk_size` must be > 0"),
        (lambda: explain.integrated_gradients(apply, params, x, baseline=np.zeros((2, 6),
                                                                                  np.float32)),
         ValueError, "`baseline` must have the shape"),
        (lambda: explain.completeness_gap(apply, params, x, x[:2]), ValueError,
         "`attributions` must have the shape"),
        (lambda: explain.smoothgrad(0, apply, params, x), TypeError, "jax.random key"),
        (lambda: explain.smoothgrad(key, apply, params, x, n_samples=0), ValueError,
         "`n_samples` must be > 0"),
        (lambda: explain.smoothgrad(key, apply, params, x, noise_level=-0.1), ValueError,
         "`noise_level` must be >= 0"),
        (lambda: explain.occlusion(apply, params, x, window=7), ValueError, "does not fit"),
        (lambda: explain.occlusion(apply, params, x, window=(1, 1, 1)), ValueError,
         "1 entry .* or 2"),
        (lambda: explain.occlusion(apply, params, x, window=(2, 2)), ValueError,
         r"\[batch, height, width\]"),
        (lambda: explain.occlusion(apply, params, x, window=2, stride=(1, 1)), ValueError,
         "`stride` must have 1 entries"),
        (lambda: explain.occlusion(apply, params, x, window=0), ValueError,
         r"`window\[0\]` must be > 0"),
        (lambda: explain.spearman_correlation(x, x[:, :5]), ValueError, "same shape"),
        (lambda: explain.sanity_check(apply, params, x, key, layers=["dense"]), ValueError,
         "not a layer of `params`"),
        (lambda: explain.sanity_check(apply, params, x, key, methods=("lime",)), ValueError,
         "`methods` must be one of"),
        (lambda: explain.sanity_check(apply, params, x, key, methods="gradient"), TypeError,
         "a sequence of names"),
        (lambda: explain.randomize_layers(key, params, ["<root>", "<root>"]), ValueError,
         "lists a layer"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_arguments_raise_clear_errors(case):
    call, error, fragment = _bad_calls()[case]
    with pytest.raises(error, match=fragment):
        call()
