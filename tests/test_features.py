"""Tests for jaxlearn.features: against scikit-learn, scipy, float64 numpy and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import correlate2d
from sklearn.preprocessing import PolynomialFeatures

from jaxlearn import features

KEY = jax.random.key(0)
D_MAX = 10000  # one draw of random Fourier features, shared by the tests (compiles once)


@pytest.fixture(scope="module")
def rff_params():
    return features.random_fourier_features(KEY, 3, D_MAX, lengthscale=1.5)


def test_phi_squares_makes_the_unit_circle_linearly_separable():
    x = np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32)
    y = (np.sum(x.astype(np.float64) ** 2, axis=1) > 1.0)
    phi = features.phi_squares(x)
    np.testing.assert_allclose(phi, x.astype(np.float64) ** 2, rtol=1e-6)
    # The lecture's claim: in phi-space the half-plane phi_1 + phi_2 > 1 is the class, exactly up
    # to float32 rounding of points on the circle itself.
    predicted = np.asarray(phi, np.float64).sum(axis=1) > 1.0
    assert np.mean(predicted == y) >= 0.998
    np.testing.assert_array_equal(jax.jit(features.phi_squares)(x), phi)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("include_bias", [False, True])
def test_polynomial_features_match_sklearn(d, degree, include_bias):
    x = np.random.default_rng(d * 10 + degree).normal(size=(7, d)).astype(np.float32)
    ours = features.polynomial_features(x, degree, include_bias=include_bias)
    ref = PolynomialFeatures(degree, include_bias=include_bias).fit_transform(x.astype(np.float64))
    assert ours.shape == ref.shape == (7, math.comb(d + degree, degree) - (not include_bias))
    # Products of <= 3 float32 factors: a few ulp (~4e-7 relative); 1e-5 is generous.
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_random_fourier_feature_parameters(rff_params):
    w, b = np.asarray(rff_params["w"], np.float64), np.asarray(rff_params["b"], np.float64)
    assert rff_params["w"].shape == (3, D_MAX) and rff_params["b"].shape == (D_MAX,)
    assert rff_params["w"].dtype == jnp.float32 and rff_params["b"].dtype == jnp.float32
    # 30000 draws of N(0, 1/1.5^2): se of the std ~ 0.4%, of the mean ~ 0.004; allow 3% / 0.02.
    assert abs(w.std() * 1.5 - 1.0) < 0.03 and abs(w.mean()) < 0.02
    assert b.min() >= 0.0 and b.max() < 2 * np.pi
    assert abs(b.mean() - np.pi) < 0.1  # U[0, 2 pi): se 1.81 / sqrt(10000) ~ 0.02
    again = features.random_fourier_features(KEY, 3, D_MAX, lengthscale=1.5)
    np.testing.assert_array_equal(again["w"], rff_params["w"])


def test_random_fourier_features_approximate_the_rbf_kernel(rff_params):
    lengthscale = 1.5
    x = np.asarray(jax.random.normal(jax.random.key(1), (20, 3)), np.float64) * 0.8
    sq_dist = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    exact = np.exp(-sq_dist / (2 * lengthscale ** 2))
    errors = {}
    for n_features in (100, 1000, D_MAX):
        # The first D of D_MAX i.i.d. features are a draw of D features.
        params = {"w": rff_params["w"][:, :n_features], "b": rff_params["b"][:n_features]}
        z = np.asarray(features.rff_apply(params, jnp.asarray(x, jnp.float32)), np.float64)
        assert z.shape == (20, n_features)
        errors[n_features] = np.max(np.abs(z @ z.T - exact))
        # Each of the D terms of z(x).z(y) lies in [-2, 2] with variance <= 1, so the error has
        # standard deviation <= 1/sqrt(D); over 210 distinct pairs the maximum stays below
        # 5/sqrt(D) (a 5-sigma event for any single pair has probability 6e-7).
        assert errors[n_features] < 5.0 / math.sqrt(n_features)
    assert errors[D_MAX] < errors[100] / 3  # the error shrinks like 1/sqrt(D): ratio ~ 10


def test_rff_apply_jit_and_dtype(rff_params):
    params = {"w": rff_params["w"][:, :16], "b": rff_params["b"][:16]}
    x = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(4, 3)
    z = features.rff_apply(params, x)
    assert z.dtype == jnp.float32 and z.shape == (4, 16)
    ref = np.sqrt(2 / 16) * np.cos(np.asarray(x, np.float64) @ np.asarray(params["w"], np.float64)
                                   + np.asarray(params["b"], np.float64))
    np.testing.assert_allclose(z, ref, atol=1e-6)  # cos of O(1) float32 arguments
    np.testing.assert_allclose(jax.jit(features.rff_apply)(params, x), z, rtol=1e-6, atol=1e-7)


def test_filters_are_read_only_and_named():
    assert set(features.FILTERS) >= {"identity", "edge_x", "edge_y", "laplacian"}
    with pytest.raises(ValueError):
        features.FILTERS["edge_x"][0, 0] = 5.0
    with pytest.raises(TypeError):
        features.FILTERS["mine"] = np.zeros((3, 3))  # type: ignore[index]
    kernel = features.image_filter("laplacian")
    assert kernel.shape == (3, 3) and kernel.dtype == jnp.float32
    assert float(kernel.sum()) == 0.0


@pytest.mark.parametrize("channel_axis", [False, True])
def test_apply_filters_matches_scipy_correlate2d(channel_axis):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 7, 6)).astype(np.float32)
    names = ("identity", "edge_x", "edge_y", "laplacian", "blur")
    named = features.apply_filters(images[..., None] if channel_axis else images, names)
    assert named.shape == (3, 7, 6, 5)
    custom = rng.normal(size=(2, 5, 3)).astype(np.float32)
    maps = features.apply_filters(images, custom)
    assert maps.shape == (3, 7, 6, 2)
    for i in range(3):
        for f, name in enumerate(names):
            ref = correlate2d(images[i].astype(np.float64), features.FILTERS[name].astype(float),
                              mode="same")
            # float32 sums of 9 products of O(1) values: error ~ 1e-6; allow 1e-5.
            np.testing.assert_allclose(named[i, :, :, f], ref, atol=1e-5)
        for f in range(2):
            ref = correlate2d(images[i].astype(np.float64), custom[f].astype(np.float64),
                              mode="same")
            np.testing.assert_allclose(maps[i, :, :, f], ref, atol=1e-5)  # 15 products: same
    np.testing.assert_allclose(jax.jit(features.apply_filters)(images, custom), maps, atol=1e-6)


def test_filters_on_a_ramp_closed_form():
    # Brightness 0.5 * column: Sobel-x gives (1 + 2 + 1) * 2 * 0.5 = 4 inside the image,
    # Sobel-y and the Laplacian give 0 (derivative across rows, second derivative of a line).
    ramp = np.tile(0.5 * np.arange(6, dtype=np.float32), (5, 1))[None]
    maps = np.asarray(features.apply_filters(ramp, ("edge_x", "edge_y", "laplacian", "identity")))
    inside = (0, slice(1, -1), slice(1, -1))
    np.testing.assert_array_equal(maps[inside + (0,)], 4.0)
    np.testing.assert_array_equal(maps[inside + (1,)], 0.0)
    np.testing.assert_array_equal(maps[inside + (2,)], 0.0)
    np.testing.assert_array_equal(maps[..., 3], ramp)


BAD_INPUTS = [
    (lambda: features.phi_squares(jnp.ones(3)), ValueError, "`x` must have 2 dimensions"),
    (lambda: features.phi_squares(np.ones((2, 2), np.int32)), TypeError, "floating dtype"),
    (lambda: features.phi_squares(np.array([[1.0, np.inf]])), ValueError, "NaN or inf"),
    (lambda: features.phi_squares("x"), TypeError, "`x` must be an array"),
    (lambda: features.polynomial_features(jnp.ones((2, 2)), 0), ValueError,
     "`degree` must be > 0"),
    (lambda: features.polynomial_features(jnp.ones((2, 2)), 1.5), TypeError,
     "`degree` must be an int"),
    (lambda: features.polynomial_features(jnp.ones((2, 2)), 2, include_bias=1), TypeError,
     "`include_bias` must be a bool"),
    (lambda: features.random_fourier_features(KEY, 2, 0), ValueError, "`n_features` must be > 0"),
    (lambda: features.random_fourier_features(KEY, 0, 2), ValueError, "`in_features` must be > 0"),
    (lambda: features.random_fourier_features(KEY, 2, 8, lengthscale=-1.0), ValueError,
     "`lengthscale` must be > 0"),
    (lambda: features.random_fourier_features(0, 2, 8), TypeError, "`key` must be a jax.random"),
    (lambda: features.rff_apply({"w": jnp.ones((3, 8)), "b": jnp.zeros(8)}, jnp.ones((2, 2))),
     ValueError, r"drawn for 3 input features; expected \[n, 3\]"),
    (lambda: features.rff_apply({"w": jnp.ones((2, 2))}, jnp.ones((2, 2))), TypeError,
     "`params` must be the dict"),
    (lambda: features.image_filter("sobel"), ValueError, "`name` must be one of"),
    (lambda: features.apply_filters(jnp.ones((2, 5, 5, 3)), ("edge_x",)), ValueError,
     "single-channel"),
    (lambda: features.apply_filters(jnp.ones((5, 5)), ("edge_x",)), ValueError,
     "`images` must have 3 or 4 dimensions"),
    (lambda: features.apply_filters(jnp.ones((2, 5, 5)), ("edge_z",)), ValueError,
     "`kernels` must be one of"),
    (lambda: features.apply_filters(jnp.ones((2, 5, 5)), jnp.ones((1, 2, 3))), ValueError,
     "odd height and width"),
    (lambda: features.apply_filters(jnp.ones((2, 5, 5)), jnp.ones((3, 3))), ValueError,
     "`kernels` must have 3 dimensions"),
    (lambda: features.apply_filters(np.ones((2, 5, 5), np.float32), np.ones((1, 3, 3))),
     TypeError, "they must match"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()
