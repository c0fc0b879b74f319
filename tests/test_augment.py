"""Tests for jaxlearn.augment: shapes, dtypes and determinism of every transform; scaling, cutout
and mixup against their definitions recomputed in numpy; composition and the training wrapper."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlearn import augment

KEY = jax.random.key(0)
X1 = jax.random.normal(jax.random.key(1), (6, 20))           # 1-D [batch, length]
X1C = jax.random.normal(jax.random.key(2), (6, 20, 2))       # 1-D [batch, length, channels]
X2 = jax.random.normal(jax.random.key(3), (6, 8, 8, 3))      # 2-D [batch, height, width, ch]

TRANSFORMS = {
    "scale": partial(augment.random_scale, low=0.5, high=2.0),
    "cutout": partial(augment.cutout, size=3),
    "noise": partial(augment.add_noise, std=0.1),
    "flip": partial(augment.random_flip, axis=1),
    "composed": augment.augment(partial(augment.random_shift, max_shift=2),
                                partial(augment.random_scale, low=0.9, high=1.1),
                                partial(augment.cutout, size=2)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("x", [X1, X1C, X2.astype(jnp.float16)], ids=["1d", "1d-ch", "2d-f16"])
def test_transforms_keep_shape_dtype_and_are_deterministic(name, x):
    t = TRANSFORMS[name]
    a, b, c = t(KEY, x), t(KEY, x), t(jax.random.key(9), x)
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_random_scale_is_one_gain_per_example_in_range():
    out = np.asarray(augment.random_scale(KEY, X1C, low=0.5, high=2.0), np.float64)
    ratio = out / np.asarray(X1C, np.float64)
    gains = ratio[:, 0, 0]
    # One float32 multiply: the ratio matches the gain to float32 relative precision.
    np.testing.assert_allclose(ratio, np.broadcast_to(gains[:, None, None], ratio.shape),
                               rtol=1e-6)
    assert np.all((gains >= 0.5) & (gains <= 2.0)) and np.unique(gains).size == 6
    np.testing.assert_array_equal(augment.random_scale(KEY, X1, low=3.0, high=3.0), 3.0 * X1)


@pytest.mark.parametrize("x,size", [(X1, 5), (X1C, 4), (X2, 3)], ids=["1d", "1d-ch", "2d"])
def test_cutout_zeroes_exactly_one_window_per_example(x, size):
    x = jnp.abs(x) + 1.0                       # no zeros before cutout
    out = np.asarray(augment.cutout(KEY, x, size=size))
    zero = out == 0
    n_spatial = 2 if x.ndim == 4 else 1
    expected = size ** n_spatial * (x.shape[-1] if x.ndim > 2 else 1)
    for i in range(x.shape[0]):
        assert zero[i].sum() == expected
        np.testing.assert_array_equal(out[i][~zero[i]], np.asarray(x[i])[~zero[i]])
        where = np.argwhere(zero[i])
        # The zeros form one window: a size (x size) box covering every channel.
        extent = where.max(axis=0) - where.min(axis=0) + 1
        assert tuple(extent[:n_spatial]) == (size,) * n_spatial


def test_mixup_is_the_convex_combination_of_a_permutation():
    n = 8
    x = jax.random.normal(jax.random.key(4), (n, 5, 3))
    y = jnp.eye(n, dtype=jnp.float32)          # each example its own class: pairs are visible
    xm, ym = augment.mixup(KEY, x, y, alpha=0.4)
    xm, ym, x = np.asarray(xm, np.float64), np.asarray(ym, np.float64), np.asarray(x, np.float64)
    # Rows of y' are lam e_i + (1 - lam) e_pi(i): sum to 1 (float32 rounding: 1e-6).
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, atol=1e-6)
    partners = []
    for i in range(n):
        lam = ym[i, i]
        off = ym[i].copy()
        off[i] = -1
        j = int(np.argmax(off)) if lam < 1 else i
        partners.append(j)
        if j != i:
            np.testing.assert_allclose(ym[i, j], 1 - lam, atol=1e-6)
        # x' uses the same lam and partner as y' (float32 arithmetic: 1e-5).
        np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
    assert sorted(partners) == list(range(n))


def test_augment_composes_with_split_keys_and_runs_under_jit():
    f = partial(augment.random_scale, low=0.5, high=1.5)
    g = partial(augment.cutout, size=4)
    k1, k2 = jax.random.split(KEY)
    expected = g(k2, f(k1, X1))
    np.testing.assert_array_equal(augment.augment(f, g)(KEY, X1), expected)
    # jit may fuse differently; one multiply and a select agree to float32 rounding.
    np.testing.assert_allclose(jax.jit(augment.augment(f, g))(KEY, X1), expected, rtol=1e-6)


def test_with_augmentation_changes_only_training_inputs():
    def apply(params, x):
        return x * params

    t = partial(augment.random_scale, low=2.0, high=2.0)
    wrapped = augment.with_augmentation(apply, t)
    np.testing.assert_array_equal(wrapped(3.0, X1), 3.0 * X1)
    np.testing.assert_array_equal(wrapped(3.0, X1, key=KEY, train=True), 3.0 * (2.0 * X1))


BAD = [
    (lambda: augment.random_scale(KEY, X1, low=2.0, high=1.0), ValueError, "low"),
    (lambda: augment.random_scale(KEY, X1, low=-1.0, high=1.0), ValueError, "low"),
    (lambda: augment.random_scale(0, X1, low=1.0, high=1.0), TypeError, "key"),
    (lambda: augment.random_scale(KEY, jnp.ones((3, 4), jnp.int32), low=1.0, high=1.0),
     TypeError, "floating"),
    (lambda: augment.cutout(KEY, X1, size=21), ValueError, "size"),
    (lambda: augment.cutout(KEY, X1, size=0), ValueError, "size"),
    (lambda: augment.cutout(KEY, X1, size=2.0), TypeError, "size"),
    (lambda: augment.cutout(KEY, jnp.ones((4,)), size=1), ValueError, "dimensions"),
    (lambda: augment.mixup(KEY, X1, jnp.arange(6), alpha=0.2), ValueError, "dimensions"),
    (lambda: augment.mixup(KEY, X1, jnp.ones((6, 3), jnp.float16), alpha=0.2), TypeError,
     "dtype"),
    (lambda: augment.mixup(KEY, X1, jnp.ones((5, 3)), alpha=0.2), ValueError, "samples"),
    (lambda: augment.mixup(KEY, X1, jnp.ones((6, 3)), alpha=0.0), ValueError, "alpha"),
    (lambda: augment.augment(), ValueError, "at least one"),
    (lambda: augment.augment(3), TypeError, "callable"),
    (lambda: augment.with_augmentation(lambda p, x: x, None), TypeError, "transform"),
    (lambda: augment.with_augmentation(lambda p, x: x, TRANSFORMS["scale"])(1.0, X1, train=True),
     ValueError, "key"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
