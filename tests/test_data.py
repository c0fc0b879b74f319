"""Tests for jaxlearn.data: generators against closed forms, loaders against their sources,
splits against exact counts, scaling against scikit-learn, augmentation against numpy."""

import functools
import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mnist1d.data import get_dataset_args, make_dataset
from scipy import stats
from sklearn import datasets as sk_datasets
from sklearn.preprocessing import StandardScaler

from jaxlearn import data

KEY = jax.random.key(0)
# Sizes are shared between tests so that each jitted generator compiles once per session
# (compiling the threefry random draws is what costs time here, not running them).
N = 4000


# ------------------------------------------------------------------------------ generators

@pytest.mark.parametrize("dim", [2, 5])
def test_unit_circle_labels_and_class_balance(dim):
    x, y = data.unit_circle(KEY, N, dim=dim)
    assert x.shape == (N, dim) and x.dtype == jnp.float32
    assert y.shape == (N,) and y.dtype == jnp.int32
    sq = np.sum(np.asarray(x, np.float64) ** 2, axis=1)
    # float32 vs float64 sums may disagree only for points within 1e-5 of the circle.
    clear = np.abs(sq - 1.0) > 1e-5
    np.testing.assert_array_equal(np.asarray(y)[clear], (sq[clear] > 1).astype(np.int32))
    # ||x||^2 ~ chi2_dim; the positive rate's standard error is <= 0.5/sqrt(4000) = 0.0079,
    # so 0.035 is > 4 standard errors.
    assert abs(float(np.mean(y)) - stats.chi2.sf(1.0, dim)) < 0.035


def test_generators_are_deterministic_per_key():
    for make in (data.unit_circle, functools.partial(data.xor, noise=0.3), data.regression_1d):
        a, b, c = make(KEY, N), make(KEY, N), make(jax.random.key(1), N)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def test_xor_without_noise_is_the_four_corners():
    x, y = data.xor(KEY, N)
    x, y = np.asarray(x), np.asarray(y)
    assert set(np.unique(x)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] < 0).astype(np.int32))
    corners, counts = np.unique(x, axis=0, return_counts=True)
    assert len(corners) == 4
    # Each corner has probability 1/4: standard deviation of a count sqrt(4000 * 3/16) ~ 27.
    assert np.all(np.abs(counts - N / 4) < 120)


def test_xor_noise_has_the_requested_std_and_keeps_corner_labels():
    x, y = data.xor(KEY, N, noise=0.1)
    x = np.asarray(x, np.float64)
    corners = np.sign(x)  # noise 0.1 needs a 10-sigma draw to cross an axis
    np.testing.assert_array_equal(np.asarray(y), (corners[:, 0] * corners[:, 1] < 0))
    # 8000 draws: relative standard error of the std is 1/sqrt(2 * 8000) ~ 0.8%; allow 5%.
    assert abs(np.std(x - corners) / 0.1 - 1.0) < 0.05


def test_xor_table_is_not_linearly_solvable():
    x, y = data.xor_table()
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    assert x.dtype == jnp.float32 and y.dtype == jnp.int32
    # Closed form: the least-squares affine fit predicts 0.5 everywhere (exact up to roundoff).
    design = np.c_[np.ones(4), np.asarray(x, np.float64)]
    coef = np.linalg.lstsq(design, np.asarray(y, np.float64), rcond=None)[0]
    np.testing.assert_allclose(design @ coef, 0.5, atol=1e-12)


@pytest.mark.parametrize("name, reference", [
    ("sin", lambda x: np.sin(np.pi * x)),
    ("abs", np.abs),
    ("step", lambda x: (x > 0).astype(np.float64)),
    ("linear", lambda x: x),
    ("cubic", lambda x: x ** 3),
])
def test_regression_1d_named_functions_without_noise(name, reference):
    x, y = data.regression_1d(KEY, N, fn=name, noise=0.0, low=-2.0, high=3.0)
    assert x.shape == (N, 1) and x.dtype == jnp.float32
    assert y.shape == (N,) and y.dtype == jnp.float32
    x64 = np.asarray(x, np.float64)[:, 0]
    assert x64.min() >= -2.0 and x64.max() < 3.0
    assert x64.min() < -1.99 and x64.max() > 2.99  # spans the interval
    # float32 evaluation: |f| <= 27 here, so 1e-5 relative + 1e-6 absolute is ~10 ulp.
    np.testing.assert_allclose(np.asarray(y, np.float64), reference(x64), rtol=1e-5, atol=1e-6)


def test_regression_1d_callable_and_noise_level():
    x, y = data.regression_1d(KEY, N, fn=lambda t: 2.0 * t, noise=0.3)
    residual = np.asarray(y, np.float64) - 2.0 * np.asarray(x, np.float64)[:, 0]
    # 4000 draws: relative standard error of the std ~ 1.1%; allow 5%. Mean: se 0.3/63 ~ 0.005.
    assert abs(np.std(residual) / 0.3 - 1.0) < 0.05
    assert abs(np.mean(residual)) < 0.02


# -------------------------------------------------------------------------------- real data

def test_load_digits_matches_sklearn_scaled():
    x, y = data.load_digits()
    source = sk_datasets.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    np.testing.assert_array_equal(x, (source.data / 16.0).astype(np.float32))
    np.testing.assert_array_equal(y, source.target)
    assert x.min() == 0.0 and x.max() == 1.0
    images, y_img = data.load_digits(as_images=True)
    assert images.shape == (1797, 8, 8, 1)
    np.testing.assert_array_equal(images.reshape(1797, 64), x)
    np.testing.assert_array_equal(images[:, 2, 5, 0], x[:, 8 * 2 + 5])
    np.testing.assert_array_equal(y_img, y)


def test_load_breast_cancer():
    x, y = data.load_breast_cancer()
    assert x.shape == (569, 30) and x.dtype == np.float32
    assert y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [212, 357])
    np.testing.assert_allclose(x, sk_datasets.load_breast_cancer().data, rtol=1e-6)


def test_load_mnist1d_matches_generator_and_is_cached_safely():
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    first = data.load_mnist1d(num_samples=200, seed=7)
    # The generator's global reseeding does not leak out.
    np.testing.assert_array_equal(np.random.get_state()[1], np_before)
    assert random.getstate() == py_before

    assert isinstance(first, data.Dataset)
    assert first.x_train.shape == (160, 40) and first.x_test.shape == (40, 40)
    assert first.x_train.dtype == np.float32 and first.y_train.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(np.r_[first.y_train, first.y_test]), [20] * 10)

    args = get_dataset_args()
    args.num_samples, args.seed = 200, 7
    raw = make_dataset(args)
    np.testing.assert_array_equal(first.x_train, raw["x"].astype(np.float32))
    np.testing.assert_array_equal(first.y_test, raw["y_test"])

    first.x_train[:] = 0.0  # the caller owns its copy
    second = data.load_mnist1d(num_samples=200, seed=7)
    np.testing.assert_array_equal(second.x_train, raw["x"].astype(np.float32))
    other = data.load_mnist1d(num_samples=200, seed=8)
    assert not np.array_equal(other.x_train, second.x_train)

    split = data.load_mnist1d(num_samples=200, seed=7, train_split=0.5)
    assert split.x_train.shape == (100, 40) and split.x_test.shape == (100, 40)


@pytest.mark.slow
def test_load_mnist1d_default_split():
    ds = data.load_mnist1d()
    assert ds.x_train.shape == (4000, 40) and ds.y_train.shape == (4000,)
    assert ds.x_test.shape == (1000, 40) and ds.y_test.shape == (1000,)
    # make_dataset centres and scales the whole set to mean 0, std 1 (float32 roundoff allowed).
    whole = np.r_[ds.x_train, ds.x_test].astype(np.float64)
    assert abs(whole.mean()) < 1e-5 and abs(whole.std() - 1.0) < 1e-5


# ------------------------------------------------------------------------------ splitting

def test_train_test_split_stratified_exact_counts():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = np.r_[np.zeros(60, np.int32), np.ones(40, np.int32)]
    ds = data.train_test_split(KEY, x, y, test_size=0.25)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [15, 10])
    np.testing.assert_array_equal(np.bincount(ds.y_train), [45, 30])
    # A partition: every example once, with its own label.
    ids = np.r_[ds.x_train[:, 0], ds.x_test[:, 0]].astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(100))
    np.testing.assert_array_equal(np.r_[ds.y_train, ds.y_test], y[ids])
    # Random order, not sorted by class or by index.
    assert not np.all(np.diff(ds.x_train[:, 0]) > 0)


@pytest.mark.parametrize("test_size", [0.1, 0.33, 0.5, 7, 61])
def test_train_test_split_proportions_within_one(test_size):
    y = np.repeat(np.arange(5, dtype=np.int32), [3, 17, 26, 51, 3])
    x = np.arange(len(y), dtype=np.float32)[:, None]
    ds = data.train_test_split(jax.random.key(3), x, y, test_size=test_size)
    n = len(y)
    n_test = test_size if isinstance(test_size, int) else math.ceil(test_size * n)
    assert len(ds.y_test) == n_test and len(ds.y_train) == n - n_test
    target = np.bincount(y) * n_test / n
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=5) - target) < 1.0)


def test_train_test_split_deterministic_unstratified_and_jax_inputs():
    x, y = data.regression_1d(KEY, N)
    x, y = x[:100], y[:100]
    a = data.train_test_split(jax.random.key(5), x, y, test_size=10, stratify=False)
    b = data.train_test_split(jax.random.key(5), x, y, test_size=10, stratify=False)
    c = data.train_test_split(jax.random.key(6), x, y, test_size=10, stratify=False)
    assert isinstance(a.x_train, jax.Array) and a.x_test.shape == (10, 1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.x_test, c.x_test)
    # Rows stay paired with their targets.
    np.testing.assert_array_equal(np.sort(np.r_[a.y_train, a.y_test]), np.sort(np.asarray(y)))


# --------------------------------------------------------------------- scaling and labels

def test_standardizer_matches_sklearn_including_constant_column():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 5.0, size=(50, 4)).astype(np.float32)
    x[:, 2] = 7.25  # zero variance: std -> 1, the column maps to 0 (as sklearn)
    stats_ = data.fit_standardizer(x)
    scaler = StandardScaler().fit(x.astype(np.float64))
    # float32 mean/std of O(10) values: ~1e-6 relative; 1e-5 leaves room.
    np.testing.assert_allclose(stats_.mean, scaler.mean_, rtol=1e-5)
    np.testing.assert_allclose(stats_.std, scaler.scale_, rtol=1e-5)
    assert float(stats_.std[2]) == 1.0
    x_new = rng.normal(size=(6, 4)).astype(np.float32)
    z = data.standardize(x_new, stats_)
    np.testing.assert_allclose(z, scaler.transform(x_new.astype(np.float64)), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(data.standardize(x, stats_)[:, 2], 0.0)
    np.testing.assert_allclose(data.unstandardize(z, stats_), x_new, rtol=1e-5, atol=1e-5)
    jitted = jax.jit(data.standardize)(x_new, stats_)
    np.testing.assert_allclose(jitted, z, rtol=1e-6)


def test_one_hot_equals_identity_rows():
    y = np.array([[0, 3], [2, 1]], np.int32)
    out = data.one_hot(y, 4)
    assert out.shape == (2, 2, 4) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, np.eye(4)[y])


# ----------------------------------------------------------------------------- augmentation

def _zero_shift(x, k, axis):
    out = np.roll(x, k, axis=axis)
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, k) if k >= 0 else slice(x.shape[axis] + k, None)
    out[tuple(index)] = 0
    return out


@pytest.mark.parametrize("shape, axis, mode", [((200, 9, 2), 1, "zeros"), ((200, 2, 9), -1, "roll"),
                                               ((200, 9), 1, "zeros")])
def test_random_shift_equals_numpy_shift(shape, axis, mode):
    x = np.arange(1, math.prod(shape) + 1, dtype=np.float32).reshape(shape)
    out = np.asarray(data.random_shift(KEY, jnp.asarray(x), max_shift=3, axis=axis, mode=mode))
    assert out.shape == shape and out.dtype == np.float32
    reference = np.roll if mode == "roll" else _zero_shift
    found = []
    for example, result in zip(x, out):
        matches = [k for k in range(-3, 4)
                   if np.array_equal(reference(example, k, axis=axis - 1 if axis > 0 else axis),
                                     result)]
        assert len(matches) == 1  # each example is exactly one shift of itself
        found.append(matches[0])
    # Every shift in [-3, 3] is drawn (7 values, 200 examples), each example its own draw.
    assert sorted(set(found)) == list(range(-3, 4))
    if len(shape) == 2:  # once is enough: every compile of the random draws costs ~1 s of CPU
        jitted = jax.jit(functools.partial(data.random_shift, max_shift=3, axis=axis, mode=mode))
        np.testing.assert_array_equal(jitted(KEY, jnp.asarray(x)), out)
        ints = data.random_shift(KEY, jnp.asarray(x, jnp.int32), max_shift=3, axis=axis,
                                 mode=mode)
        assert ints.dtype == jnp.int32
        np.testing.assert_array_equal(ints, out.astype(np.int32))


def test_random_crop_equals_numpy_pad_and_crop():
    x = np.arange(1, 200 * 4 * 5 * 2 + 1, dtype=np.int32).reshape(200, 4, 5, 2)
    out = np.asarray(data.random_crop(KEY, jnp.asarray(x), padding=1))
    assert out.shape == x.shape and out.dtype == np.int32
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    found = set()
    for i in range(len(x)):
        matches = [(a, b) for a in range(3) for b in range(3)
                   if np.array_equal(padded[i, a:a + 4, b:b + 5], out[i])]
        assert len(matches) == 1
        found.add(matches[0])
    assert len(found) == 9  # all offsets in {0, 1, 2}^2 drawn
    jitted = jax.jit(functools.partial(data.random_crop, padding=1))
    np.testing.assert_array_equal(jitted(KEY, jnp.asarray(x)), out)
    np.testing.assert_array_equal(data.random_crop(KEY, jnp.asarray(x), padding=0), x)


def test_random_flip_flips_about_half():
    x = np.arange(400 * 3 * 4, dtype=np.float32).reshape(400, 3, 4, 1)
    out = np.asarray(data.random_flip(KEY, jnp.asarray(x)))
    flipped = np.array([np.array_equal(o, e[:, ::-1]) for o, e in zip(out, x)])
    kept = np.array([np.array_equal(o, e) for o, e in zip(out, x)])
    assert np.all(flipped ^ kept)
    # Bernoulli(0.5) over 400 examples: standard error 0.025; allow 0.1.
    assert abs(flipped.mean() - 0.5) < 0.1
    np.testing.assert_array_equal(jax.jit(data.random_flip)(KEY, jnp.asarray(x)), out)
    np.testing.assert_array_equal(data.random_flip(KEY, x, prob=0.0), x)
    np.testing.assert_array_equal(data.random_flip(KEY, x, prob=1.0), x[:, :, ::-1])
    signals = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(data.random_flip(KEY, signals, axis=1, prob=1.0),
                                  signals[:, ::-1])


def test_add_noise_statistics_determinism_and_jit():
    x = jnp.ones((500, 20), jnp.float32)
    out = data.add_noise(KEY, x, std=0.5)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, data.add_noise(KEY, x, std=0.5))
    noise = np.asarray(out, np.float64) - 1.0
    # 10000 draws: relative standard error of the std ~ 0.7%; allow 5%. Mean se 0.005.
    assert abs(noise.std() / 0.5 - 1.0) < 0.05 and abs(noise.mean()) < 0.025
    # Every example gets its own draw.
    assert not np.allclose(noise[0], noise[1])
    jitted = jax.jit(functools.partial(data.add_noise, std=0.5))(KEY, x)
    # Same random bits; XLA may fuse x + std * eps into one FMA under jit: last-ulp changes.
    np.testing.assert_allclose(jitted, out, rtol=0, atol=2.5e-7)  # 2 ulp at |x| ~ 1-2
    np.testing.assert_array_equal(data.add_noise(KEY, x, std=0.0), x)


def test_augmentation_validates_before_tracing():
    shift = jax.jit(functools.partial(data.random_shift, max_shift=9))
    with pytest.raises(ValueError, match="`max_shift` must lie in"):
        shift(KEY, jnp.zeros((2, 5)))


# ------------------------------------------------------------------------------- bad input

_STATS = data.fit_standardizer(np.ones((4, 3), np.float32))

BAD_INPUTS = [
    (lambda: data.unit_circle(KEY, 0), ValueError, "`n` must be > 0"),
    (lambda: data.unit_circle(42, 10), TypeError, "`key` must be a jax.random key"),
    (lambda: data.unit_circle(KEY, 10, dim=2.0), TypeError, "`dim` must be an int"),
    (lambda: data.xor(KEY, 10, noise=-1.0), ValueError, "`noise` must be >= 0"),
    (lambda: data.regression_1d(KEY, 10, fn="tan"), ValueError, "`fn` must be one of"),
    (lambda: data.regression_1d(KEY, 10, fn=3), TypeError, "`fn` must be a name"),
    (lambda: data.regression_1d(KEY, 10, fn=lambda t: t[:, None]), ValueError,
     r"`fn` must map x of shape \(10,\)"),
    (lambda: data.regression_1d(KEY, 10, low=1.0, high=0.0), ValueError,
     "`low` must be < `high`"),
    (lambda: data.load_digits(as_images=1), TypeError, "`as_images` must be a bool"),
    (lambda: data.load_mnist1d(num_samples=15), ValueError, "multiple of 10"),
    (lambda: data.load_mnist1d(train_split=1.5), ValueError, r"`train_split` must lie in \(0"),
    (lambda: data.load_mnist1d(num_samples=10, train_split=0.05), ValueError,
     "both splits need at least one"),
    (lambda: data.train_test_split(KEY, np.zeros((10, 2)), np.zeros(9, np.int32)), ValueError,
     "`x` has 10 samples but `y` has 9"),
    (lambda: data.train_test_split(KEY, np.zeros((10, 2)), np.zeros(10, np.int32),
                                   test_size=1.5), ValueError, r"`test_size` must lie in \(0"),
    (lambda: data.train_test_split(KEY, np.zeros((10, 2)), np.zeros(10, np.int32),
                                   test_size=10), ValueError, r"`test_size` as a count"),
    (lambda: data.train_test_split(KEY, np.zeros((10, 2)), np.zeros(10, np.float32)), TypeError,
     "integer class labels to stratify"),
    (lambda: data.one_hot(np.array([1, 12]), 10), ValueError,
     "`y` has label 12 but `n_classes` is 10"),
    (lambda: data.one_hot(np.array([1.0]), 10), TypeError, "integer class labels"),
    (lambda: data.fit_standardizer(np.array([[1.0, np.nan]])), ValueError, "NaN or inf"),
    (lambda: data.fit_standardizer(np.ones((3, 2), np.int32)), TypeError, "floating dtype"),
    (lambda: data.standardize(np.ones((2, 4), np.float32), _STATS), ValueError,
     r"fitted on examples of shape \(3,\); expected \[n, 3\]"),
    (lambda: data.standardize(np.ones((2, 3), np.float32), (1.0, 1.0)), TypeError,
     "`stats` must be the StandardizerStats"),
    (lambda: data.add_noise(KEY, jnp.ones((2, 3), jnp.int32), std=1.0), TypeError,
     "floating dtype"),
    (lambda: data.add_noise(KEY, jnp.ones((2, 3)), std=-0.1), ValueError, "`std` must be >= 0"),
    (lambda: data.random_shift(KEY, jnp.ones(6), max_shift=1), ValueError,
     r"must be \[batch, length\]"),
    (lambda: data.random_shift(KEY, jnp.ones((2, 6)), max_shift=6), ValueError,
     r"`max_shift` must lie in \[0, 6\)"),
    (lambda: data.random_shift(KEY, jnp.ones((2, 6)), max_shift=1, axis=0), ValueError,
     "`axis` must name a non-batch axis"),
    (lambda: data.random_shift(KEY, jnp.ones((2, 6)), max_shift=1, mode="wrap"), ValueError,
     "`mode` must be one of"),
    (lambda: data.random_crop(KEY, jnp.ones((2, 6, 6)), padding=1), ValueError,
     r"must be \[batch, height, width, channels\]"),
    (lambda: data.random_crop(KEY, jnp.ones((2, 6, 6, 1)), padding=-1), ValueError,
     "`padding` must be >= 0"),
    (lambda: data.random_flip(KEY, jnp.ones((2, 6, 6, 1)), prob=2.0), ValueError,
     r"`prob` must lie in \[0.0, 1.0\]"),
    (lambda: data.random_flip(KEY, jnp.ones((2, 6, 6, 1)), axis=4), ValueError,
     "`axis` must name a non-batch axis"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()
