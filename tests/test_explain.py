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
    got = explain.smoothgrad(apply, params, x, key=key, target=target, n_samples=5,
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
    quiet = explain.smoothgrad(apply, params, x, key=jax.random.key(0), n_samples=4,
                               noise_level=0.0)
    np.testing.assert_allclose(quiet, plain, atol=ATOL)
    a = explain.smoothgrad(apply, params, x, key=jax.random.key(0), n_samples=4)
    b = explain.smoothgrad(apply, params, x, key=jax.random.key(0), n_samples=4)
    c = explain.smoothgrad(apply, params, x, key=jax.random.key(1), n_samples=4)
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
    rows = explain.sanity_check(apply, params, x, key=jax.random.key(0), absolute=False)
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
    rows = explain.sanity_check(model.apply, params, x[:16],
                                key=jax.random.key(0), methods=("gradient", "gradient_x_input"))
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
    rows = explain.sanity_check(model.apply, params, x[:8], key=jax.random.key(0), methods=methods,
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
         "`apply_fn` failed"),
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
        (lambda: explain.smoothgrad(apply, params, x, key=0), TypeError, "jax.random key"),
        (lambda: explain.smoothgrad(apply, params, x, key=key, n_samples=0), ValueError,
         "`n_samples` must be > 0"),
        (lambda: explain.smoothgrad(apply, params, x, key=key, noise_level=-0.1), ValueError,
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
        (lambda: explain.sanity_check(apply, params, x, key=key, layers=["dense"]), ValueError,
         "not a layer of `params`"),
        (lambda: explain.sanity_check(apply, params, x, key=key, methods=("lime",)), ValueError,
         "`methods` must be one of"),
        (lambda: explain.sanity_check(apply, params, x, key=key, methods="gradient"), TypeError,
         "a sequence of names"),
        (lambda: explain.randomize_layers(key, params, ["<root>", "<root>"]), ValueError,
         "lists a layer"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_arguments_raise_clear_errors(case):
    call, error, fragment = _bad_calls()[case]
    with pytest.raises(error, match=fragment):
        call()


# ------------------------------------------------------------ SmoothGrad^2 and VarGrad (15.3)

def test_smoothgrad_squared_and_vargrad_match_a_loop_over_the_same_noise():
    # The same draws as smoothgrad (sigma from each example's range, sample s from
    # fold_in(key, s)); the loop accumulates in float64, the library in float32 over 5 terms of
    # size ~1: atol 1e-5 as above. chunk_size=2 pads the last chunk of 5.
    apply, params = _tanh_mlp()
    x = _x((3, 6))
    key = jax.random.key(7)
    target = np.array([1, 0, 3])
    kwargs = dict(key=key, target=target, n_samples=5, noise_level=0.2, chunk_size=2)
    squared = explain.smoothgrad_squared(apply, params, x, **kwargs)
    variance = explain.vargrad(apply, params, x, **kwargs)
    sigma = 0.2 * (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True))
    grads = np.stack([np.asarray(explain.saliency(
        apply, params, x + sigma * jax.random.normal(jax.random.fold_in(key, s), x.shape),
        target=target), np.float64) for s in range(5)])
    np.testing.assert_allclose(squared, np.mean(grads ** 2, axis=0), atol=ATOL)
    np.testing.assert_allclose(variance, np.var(grads, axis=0), atol=ATOL)   # divisor n
    assert float(np.min(np.var(grads, axis=0))) >= 0 and float(np.max(variance)) > 1e-4
    # SG^2 = VarGrad + SG^2-of-the-mean, with smoothgrad's own noise.
    mean = explain.smoothgrad(apply, params, x, key=key, target=target, n_samples=5,
                              noise_level=0.2, chunk_size=3)
    np.testing.assert_allclose(squared, variance + np.asarray(mean) ** 2, atol=ATOL)


def test_vargrad_without_spread_is_zero_without_cancellation():
    # A linear model's gradient is the same at every noisy copy: the variance is 0. With weights
    # ~100, mean(g^2) - mean(g)^2 in float32 misses it by ~1e-2 (ulps of g^2 ~ 1e4); the pairwise
    # update of the chunks' means keeps it below 1e-6.
    apply, params = _linear()
    params = {"w": 100 * params["w"], "b": params["b"]}
    x = _x((4, 6))
    key = jax.random.key(0)
    variance = explain.vargrad(apply, params, x, key=key, n_samples=50, chunk_size=16)
    assert float(jnp.max(jnp.abs(variance))) < 1e-6
    squared = explain.smoothgrad_squared(apply, params, x, key=key, n_samples=50)
    np.testing.assert_allclose(squared, explain.saliency(apply, params, x) ** 2, rtol=1e-5)
    single = explain.vargrad(*_tanh_mlp(), _x((3, 6)), key=key, n_samples=1)
    np.testing.assert_array_equal(single, np.zeros((3, 6)))


def test_smoothgrad_squared_does_not_depend_on_chunk_size():
    apply, params = _tanh_mlp()
    x = _x((3, 6))
    runs = [(explain.smoothgrad_squared(apply, params, x, key=jax.random.key(1), n_samples=7,
                                        chunk_size=c),
             explain.vargrad(apply, params, x, key=jax.random.key(1), n_samples=7, chunk_size=c))
            for c in (1, 3, 50)]
    for squared, variance in runs[1:]:
        np.testing.assert_allclose(squared, runs[0][0], atol=ATOL)
        np.testing.assert_allclose(variance, runs[0][1], atol=ATOL)


# ---------------------------------------------------------------- layer attributions (15.3)

def _conv1d_numpy(x, w, b, stride, pad):
    """``y[n, o, f] = b[f] + sum_{k, c} x_pad[n, o * stride + k, c] w[k, c, f]`` in float64."""
    x = np.pad(np.asarray(x, np.float64), [(0, 0), (pad, pad), (0, 0)])
    kernel = w.shape[0]
    n_out = (x.shape[1] - kernel) // stride + 1
    y = np.zeros((x.shape[0], n_out, w.shape[2]))
    for o in range(n_out):
        y[:, o] = np.einsum("nkc,kcf->nf", x[:, o * stride:o * stride + kernel], w) + b
    return y


def _upsample_numpy(maps, n_out):
    """Linear interpolation with half-pixel centres along axis 1, one output at a time."""
    n_in = maps.shape[1]
    out = np.zeros((maps.shape[0], n_out, *maps.shape[2:]))
    for i in range(n_out):
        s = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
        low = int(np.floor(s))
        high = min(low + 1, n_in - 1)
        out[:, i] = (1 - (s - low)) * maps[:, low] + (s - low) * maps[:, high]
    return out


def test_upsample_map_matches_hand_interpolation_and_jax_image_resize():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 3, 5)).astype(np.float32)
    got = explain.upsample_map(maps, (2, 8, 12, 2))
    expected = np.swapaxes(_upsample_numpy(np.swapaxes(_upsample_numpy(maps, 8), 1, 2), 12), 1, 2)
    np.testing.assert_allclose(got, np.broadcast_to(expected[..., None], (2, 8, 12, 2)),
                               atol=ATOL)
    # Enlarging, jax.image.resize's "linear" kernel is the same rule.
    np.testing.assert_allclose(got[..., 0], jax.image.resize(maps, (2, 8, 12), "linear"),
                               atol=ATOL)
    one_d = rng.normal(size=(3, 7)).astype(np.float32)
    np.testing.assert_allclose(explain.upsample_map(one_d, (3, 40)), _upsample_numpy(one_d, 40),
                               atol=ATOL)
    np.testing.assert_allclose(explain.upsample_map(one_d, (3, 7)), one_d, atol=0)  # same size
    np.testing.assert_allclose(explain.upsample_map(one_d, (3, 4)), _upsample_numpy(one_d, 4),
                               atol=ATOL)


# conv (stride 2: 12 -> 6 positions, 4 channels) -> ReLU -> flatten -> dense: Grad-CAM has a
# closed form at the ReLU. One layer tuple for all tests (compiled programs are keyed on it).
_CONV_LINEAR = (nn.conv1d(4, 3, stride=2, padding=1), nn.relu, nn.flatten(), nn.dense(3))
_CONV_TANH_HEAD = (nn.conv1d(4, 3, stride=2, padding=1), nn.relu, nn.flatten(),
                   nn.dense(5), nn.tanh, nn.dense(3))


def test_grad_cam_of_a_linear_head_has_a_closed_form():
    # y_t = sum_{p,k} W[p K + k, t] A[p, k] + b_t, so alpha_k = mean_p W[p K + k, t] and
    # Grad-CAM = ReLU(sum_k alpha_k A[:, k]), upsampled from 6 positions to 12.
    _, params = nn.serial(*_CONV_LINEAR).init(jax.random.key(0), (12, 1))
    x = _x((5, 12, 1))
    target = np.array([0, 1, 2, 0, 1])
    conv, dense = params[0], params[3]
    acts = np.maximum(_conv1d_numpy(x, np.asarray(conv["w"]), np.asarray(conv["b"]), 2, 1), 0)
    alpha = np.asarray(dense["w"], np.float64).reshape(6, 4, 3).mean(axis=0)[:, target].T  # [5, 4]
    cam = np.maximum(np.einsum("npk,nk->np", acts, alpha), 0)
    expected = _upsample_numpy(cam, 12)[..., None]
    got = explain.grad_cam(_CONV_LINEAR, params, x, layer=1, target=target)
    assert got.shape == x.shape
    assert float(np.max(expected)) > 0.05 and float(np.min(expected)) == 0.0  # ReLU bites
    np.testing.assert_allclose(got, expected, atol=ATOL)
    # A negative index names the same layer; the default target is the predicted class.
    predicted = np.argmax(nn.serial(*_CONV_LINEAR).apply(params, x), axis=1)
    np.testing.assert_allclose(explain.grad_cam(_CONV_LINEAR, params, x, layer=-3),
                               explain.grad_cam(_CONV_LINEAR, params, x, layer=1,
                                                target=predicted), atol=0)


def test_grad_cam_with_a_nonlinear_head_matches_a_hand_chain_rule():
    # head: flatten -> dense(5) -> tanh -> dense(3); d y_t / d A = W1 (W2[:, t] * (1 - tanh^2 z))
    # reshaped to A's [6, 4], all in float64 NumPy.
    _, params = nn.serial(*_CONV_TANH_HEAD).init(jax.random.key(1), (12, 1))
    x = _x((4, 12, 1), seed=2)
    target = np.array([2, 0, 1, 1])
    conv, d1, d2 = params[0], params[3], params[5]
    w1, b1 = np.asarray(d1["w"], np.float64), np.asarray(d1["b"], np.float64)
    w2 = np.asarray(d2["w"], np.float64)
    acts = np.maximum(_conv1d_numpy(x, np.asarray(conv["w"]), np.asarray(conv["b"]), 2, 1), 0)
    z = acts.reshape(4, -1) @ w1 + b1
    grads = ((w2[:, target].T * (1 - np.tanh(z) ** 2)) @ w1.T).reshape(4, 6, 4)
    cam = np.maximum(np.einsum("npk,nk->np", acts, grads.mean(axis=1)), 0)
    got = explain.grad_cam(_CONV_TANH_HEAD, params, x, layer=1, target=target)
    np.testing.assert_allclose(got, _upsample_numpy(cam, 12)[..., None], atol=ATOL)


def test_grad_cam_of_a_global_average_pooling_head_is_cam():
    # Your own model as (features, head): a 2-D conv, then global average pooling and a dense
    # layer W. alpha_k = W[k, t] / Z, so Grad-CAM = ReLU(sum_k W[k, t] A_k) / Z (CAM, Zhou et al.
    # 2016), with Z = 4 x 4 positions, upsampled to the 8 x 8 image.
    conv = nn.conv2d(5, 3, stride=2, padding=1)
    _, conv_params = conv.init(jax.random.key(0), (8, 8, 2))
    rng = np.random.default_rng(3)
    params = {"conv": conv_params, "w": rng.normal(size=(5, 3)).astype(np.float32),
              "b": rng.normal(size=3).astype(np.float32)}

    def features(p, x):
        return jax.nn.relu(conv.apply(p["conv"], x))

    def head(p, a):
        return jnp.mean(a, axis=(1, 2)) @ p["w"] + p["b"][None, :]

    x = _x((3, 8, 8, 2))
    target = np.array([0, 2, 1])
    acts = np.asarray(features(params, x), np.float64)                 # [3, 4, 4, 5]
    cam = np.maximum(np.einsum("nhwk,kn->nhw", acts, params["w"][:, target]), 0) / 16
    expected = np.swapaxes(_upsample_numpy(np.swapaxes(_upsample_numpy(cam, 8), 1, 2), 8), 1, 2)
    got = explain.grad_cam((features, head), params, x, target=target)
    assert got.shape == x.shape and float(np.max(expected)) > 0.01
    np.testing.assert_allclose(got, np.broadcast_to(expected[..., None], x.shape), atol=ATOL)


def test_cut_model_by_name_matches_the_serial_model_and_the_pair():
    layers = {"conv": _CONV_LINEAR[0], "relu": _CONV_LINEAR[1], "flatten": _CONV_LINEAR[2],
              "logits": _CONV_LINEAR[3]}
    _, params = nn.serial(*_CONV_LINEAR).init(jax.random.key(0), (12, 1))
    x = _x((3, 12, 1))
    features, head = explain.cut_model(layers, "relu")
    np.testing.assert_allclose(head(params, features(params, x)),
                               nn.serial(*_CONV_LINEAR).apply(params, x), atol=ATOL)
    assert features(params, x).shape == (3, 6, 4)
    by_name = explain.grad_cam(layers, params, x, layer="relu")
    np.testing.assert_array_equal(by_name, explain.grad_cam(_CONV_LINEAR, params, x, layer=1))
    np.testing.assert_allclose(by_name, explain.grad_cam((features, head), params, x), atol=ATOL)


_CONV_TANH = (nn.reshape((12, 1)), nn.conv1d(3, 3, stride=2, padding=1), nn.tanh,
              nn.conv1d(4, 3, padding=1), nn.tanh, nn.flatten(), nn.dense(3))


def test_layer_integrated_gradients_is_complete_at_the_layer():
    # A tanh head is smooth, so the midpoint rule errs by O(1/n_steps^2): at 128 steps the
    # layer attributions sum to f_t(x) - f_t(x') within 1e-3 logits (changes are O(1)), and 4x
    # the steps cut the gap by more than 8x (16x in theory, less float32 round-off).
    _, params = nn.serial(*_CONV_TANH).init(jax.random.key(2), (12,))
    x, baseline = 2.0 * _x((6, 12)), 0.5 * _x((12,), seed=4)
    logits = nn.serial(*_CONV_TANH).apply(params, x)
    target = np.argmax(logits, axis=1)
    change = (logits[np.arange(6), target]
              - nn.serial(*_CONV_TANH).apply(params, np.broadcast_to(baseline, x.shape))[
                  np.arange(6), target])
    assert float(np.max(np.abs(change))) > 0.5       # a non-trivial quantity to recover
    gaps = {}
    for n_steps in (32, 128):
        lig = explain.layer_integrated_gradients(_CONV_TANH, params, x, layer=2,
                                                 baseline=baseline, n_steps=n_steps, chunk_size=7)
        assert lig.shape == (6, 6, 3)
        gaps[n_steps] = float(np.max(np.abs(np.sum(lig, axis=(1, 2)) - change)))
    assert gaps[128] < 1e-3
    assert gaps[32] > 8 * gaps[128]


def test_layer_integrated_gradients_closed_form_and_input_layer():
    # A linear head: the integrand is constant, so LIG = (h - h') * W[:, t] exactly (2 steps).
    _, params = nn.serial(*_CONV_LINEAR).init(jax.random.key(0), (12, 1))
    x = _x((4, 12, 1))
    target = np.array([0, 1, 2, 1])
    features, _ = explain.cut_model(_CONV_LINEAR, 1)
    h, h0 = features(params, x), features(params, np.zeros_like(x))
    expected = (h - h0) * np.asarray(params[3]["w"])[:, target].T.reshape(4, 6, 4)
    for rule in explain.IG_RULES:
        got = explain.layer_integrated_gradients(_CONV_LINEAR, params, x, layer=1, target=target,
                                                 n_steps=2, rule=rule)
        np.testing.assert_allclose(got, expected, atol=ATOL)
    # At the reshape layer (the input, reshaped) it is integrated gradients of the input.
    _, params = nn.serial(*_CONV_TANH).init(jax.random.key(2), (12,))
    x = _x((3, 12))
    at_input = explain.layer_integrated_gradients(_CONV_TANH, params, x, layer=0, n_steps=16)
    plain = explain.integrated_gradients(nn.serial(*_CONV_TANH).apply, params, x, n_steps=16)
    np.testing.assert_allclose(np.asarray(at_input).reshape(3, 12), plain, atol=ATOL)


def test_cut_model_runs_in_test_mode_and_the_last_cut_has_an_identity_head():
    layers = (nn.dense(8), nn.dropout(0.5), nn.dense(3))
    _, params = nn.serial(*layers).init(jax.random.key(0), (5,))
    x = _x((4, 5))
    features, head = explain.cut_model(layers, 1)
    np.testing.assert_allclose(features(params, x), x @ params[0]["w"] + params[0]["b"][None],
                               atol=ATOL)                 # dropout off: the test-mode model
    features, head = explain.cut_model(layers, -1)
    logits = nn.serial(*layers).apply(params, x)
    np.testing.assert_allclose(features(params, x), logits, atol=ATOL)
    np.testing.assert_array_equal(head(params, logits), logits)


def test_grad_cam_maps_a_flat_signal_reshaped_inside_the_model():
    # x [batch, 12] is reshaped to [batch, 12, 1] by the model's first layer: the map has the
    # shape of x, and equals the map of the reshaped input on a model without the reshape.
    _, params = nn.serial(*_CONV_TANH).init(jax.random.key(2), (12,))
    x = _x((3, 12))
    flat = explain.grad_cam(_CONV_TANH, params, x, layer=4)
    assert flat.shape == (3, 12) and float(jnp.max(flat)) > 0
    inner = explain.grad_cam(_CONV_TANH[1:], params[1:], x.reshape(3, 12, 1), layer=3)
    np.testing.assert_allclose(flat, inner[..., 0], atol=ATOL)


def _bad_layer_calls():
    _, params = nn.serial(*_CONV_LINEAR).init(jax.random.key(0), (12, 1))
    named = dict(zip(("conv", "relu", "flatten", "logits"), _CONV_LINEAR))
    x = _x((2, 12, 1))
    key = jax.random.key(0)
    apply, lin = _linear()
    return [
        (lambda: explain.grad_cam(_CONV_LINEAR, params, x, layer=4), ValueError,
         r"`layer` is 4 but the model has 4 layers; the valid indices are 0\.\.3"),
        (lambda: explain.grad_cam(named, params, x, layer="pool"), ValueError,
         r"'pool', which is not a layer .* \['conv', 'relu', 'flatten', 'logits'\]"),
        (lambda: explain.grad_cam(_CONV_LINEAR, params, x, layer="relu"), ValueError,
         "valid indices are 0..3"),
        (lambda: explain.grad_cam(_CONV_LINEAR, params, x), ValueError, "give `layer=`"),
        (lambda: explain.grad_cam(_CONV_LINEAR, params, x, layer=1.0), TypeError,
         "index .* or name"),
        (lambda: explain.grad_cam(nn.serial(*_CONV_LINEAR), params, x, layer=1), TypeError,
         "single Layer"),
        (lambda: explain.grad_cam(_CONV_LINEAR, params[:3], x, layer=1), ValueError,
         r"one entry per layer \(4\), got 3 entries"),
        (lambda: explain.grad_cam(_CONV_LINEAR, params, x, layer=2), ValueError,
         r"Grad-CAM needs feature maps .* gives shape \(2, 24\)"),
        (lambda: explain.grad_cam(explain.cut_model(_CONV_LINEAR, 1), params, x, layer=1),
         ValueError, "pair, cut already"),
        (lambda: explain.grad_cam("conv", params, x, layer=1), TypeError,
         "sequence or mapping of jl.nn Layers"),
        (lambda: explain.layer_integrated_gradients(_CONV_LINEAR, params, x, layer=1,
                                                    n_steps=0), ValueError,
         "`n_steps` must be > 0"),
        (lambda: explain.layer_integrated_gradients(_CONV_LINEAR, params, x, layer=1,
                                                    baseline=np.zeros((12,), np.float32)),
         ValueError, "`baseline` must have the shape"),
        (lambda: explain.cut_model(_CONV_LINEAR, -5), ValueError, "has 4 layers"),
        (lambda: explain.cut_model({"conv": 1}, "conv"), TypeError, r"got dict holding \['int'\]"),
        (lambda: explain.upsample_map(np.zeros((2, 3, 4, 5), np.float32), (2, 8)), ValueError,
         "`maps` must have 2 or 3 dimensions"),
        (lambda: explain.upsample_map(np.zeros((2, 3), np.float32), (3, 8)), ValueError,
         r"batch = 2"),
        (lambda: explain.smoothgrad_squared(apply, lin, _x((2, 6)), key=0), TypeError,
         "jax.random key"),
        (lambda: explain.vargrad(apply, lin, _x((2, 6)), key=key, n_samples=0), ValueError,
         "`n_samples` must be > 0"),
        (lambda: explain.vargrad(apply, lin, _x((2, 6)), key=key, noise_level=-1.0), ValueError,
         "`noise_level` must be >= 0"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_layer_calls())))
def test_bad_layer_and_noise_arguments_raise_clear_errors(case):
    call, error, fragment = _bad_layer_calls()[case]
    with pytest.raises(error, match=fragment):
        call()
