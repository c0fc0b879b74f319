"""Tests for jaxlearn.shortcuts: cue builders against their documented counts and pixels, the
phi coefficient against numpy, ablations against numpy loops, group accuracies on hand-made cases,
and a logistic regression on digits that learns a planted token.

Tolerances: the builders and ablations copy or add float32 values, so they are compared exactly
(an added bump to 1e-6, float32 rounding of x + bump). Phi coefficients: see each test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import data, nn, shortcuts, train


def _images(n=40, h=6, w=5, c=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 0.5, (n, h, w, c)).astype(np.float32)


def _labels(n=40, n_classes=4, seed=0):
    return np.random.default_rng(seed + 1).integers(0, n_classes, n).astype(np.int32)


# ------------------------------------------------------------------------------------ cues

@pytest.mark.parametrize("corner,rows,cols", [("top_left", slice(0, 2), slice(0, 2)),
                                              ("top_right", slice(0, 2), slice(3, 5)),
                                              ("bottom_left", slice(4, 6), slice(0, 2)),
                                              ("bottom_right", slice(4, 6), slice(3, 5))])
def test_token_cue_is_a_square_in_the_corner(corner, rows, cols):
    cue = shortcuts.token_cue((6, 5, 2), size=2, value=0.8, corner=corner)
    expected = np.zeros((6, 5, 2), bool)
    expected[rows, cols, :] = True
    np.testing.assert_array_equal(cue.mask, expected)
    np.testing.assert_array_equal(cue.values, np.where(expected, 0.8, 0.0).astype(np.float32))
    assert cue.additive is False


def test_bump_cue_profile_and_region():
    cue = shortcuts.bump_cue((40, 1), position=10, width=2.0, height=3.0)
    t = np.arange(40)
    region = np.abs(t - 10) <= 6
    profile = np.where(region, 3.0 * np.exp(-((t - 10) ** 2) / 8.0), 0.0)
    np.testing.assert_array_equal(cue.mask[:, 0], region)
    np.testing.assert_allclose(cue.values[:, 0], profile, atol=1e-6)
    assert cue.additive is True


# -------------------------------------------------------------------------------- planting

@pytest.mark.parametrize("correlation", [0.0, 0.25, 0.6, 0.9, 1.0])
def test_plant_token_images_produces_the_requested_correlation(correlation):
    x, y = data.load_digits(as_images=True)
    planted, has = shortcuts.plant_token_images(jax.random.key(0), x, y, correlation=correlation,
                                                token_class=3, size=2, value=1.0)
    has = np.asarray(has)
    n1 = int(np.sum(y == 3))
    n0 = y.size - n1
    p = n1 / y.size
    # The documented counts, exactly.
    assert int(np.sum(has & (y == 3))) == round((correlation + (1 - correlation) * p) * n1)
    assert int(np.sum(has & (y != 3))) == round((1 - correlation) * p * n0)
    # Rounding each count moves phi by at most about 0.5 / n per group: 1 / min(n1, n0) bounds it.
    phi = shortcuts.cue_correlation(has, y, token_class=3)
    assert abs(phi - correlation) <= 1 / min(n1, n0)
    np.testing.assert_allclose(phi, np.corrcoef(has, y == 3)[0, 1], rtol=1e-12)
    # Pixels: the patch on the chosen images, everything else untouched.
    planted = np.asarray(planted)
    np.testing.assert_array_equal(planted[has][:, :2, :2, :], 1.0)
    np.testing.assert_array_equal(planted[has][:, 2:], x[has][:, 2:])
    np.testing.assert_array_equal(planted[~has], x[~has])


def test_plant_modes_and_keys():
    x, y = _images(), _labels()
    cue_key = jax.random.key(3)
    _, absent = shortcuts.plant_token_images(cue_key, x, y, mode="absent")
    _, everywhere = shortcuts.plant_token_images(cue_key, x, y, mode="all")
    _, flipped = shortcuts.plant_token_images(cue_key, x, y, token_class=2, mode="flipped")
    assert not np.any(absent) and np.all(everywhere)
    np.testing.assert_array_equal(flipped, y != 2)
    assert shortcuts.cue_correlation(flipped, y, token_class=2) == pytest.approx(-1.0)
    a = shortcuts.plant_token_images(cue_key, x, y, correlation=0.5)
    b = shortcuts.plant_token_images(cue_key, x, y, correlation=0.5)
    c = shortcuts.plant_token_images(jax.random.key(4), x, y, correlation=0.5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1]) and int(np.sum(a[1])) == int(np.sum(c[1]))


def test_plant_bump_1d_adds_the_bump_where_planted():
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(60, 40)).astype(np.float32)
    y = rng.integers(0, 10, 60).astype(np.int32)
    planted, has = shortcuts.plant_bump_1d(jax.random.key(0), signals, y, position=30,
                                           width=1.5, height=2.0, correlation=1.0, token_class=7)
    np.testing.assert_array_equal(has, y == 7)
    bump = shortcuts.bump_cue((40,), position=30, width=1.5, height=2.0).values
    planted, has = np.asarray(planted), np.asarray(has)
    np.testing.assert_allclose(planted[has], signals[has] + np.asarray(bump), atol=1e-6)
    np.testing.assert_array_equal(planted[~has], signals[~has])
    assert float(np.max(planted[has, 30] - signals[has, 30])) == pytest.approx(2.0)


# ------------------------------------------------------------------------------- ablations

def test_erase_keep_bbox_and_keep_border_against_numpy():
    x = _images(n=3, h=6, w=5, c=2)
    masks = np.random.default_rng(2).uniform(size=(3, 6, 5)) < 0.3
    erased = np.asarray(shortcuts.erase_object(x, masks, fill=-1.0))
    np.testing.assert_array_equal(erased, np.where(masks[..., None], -1.0, x))

    boxes = np.array([[0, 0, 6, 5], [1, 2, 3, 4], [5, 4, 6, 5]], np.int32)
    kept = np.asarray(shortcuts.keep_bbox(x, boxes))
    for i, (top, left, bottom, right) in enumerate(boxes):
        expected = np.zeros_like(x[i])
        expected[top:bottom, left:right] = x[i, top:bottom, left:right]
        np.testing.assert_array_equal(kept[i], expected)
    np.testing.assert_array_equal(shortcuts.box_masks(boxes, 6, 5)[1],
                                  np.pad(np.ones((2, 2), bool), ((1, 3), (2, 1))))

    border = np.asarray(shortcuts.keep_border(x, 2, fill=0.5))
    expected = x.copy()
    expected[:, 2:4, 2:3] = 0.5
    np.testing.assert_array_equal(border, expected)


# -------------------------------------------------------------------------------- measures

def test_group_and_worst_group_accuracy_hand_made():
    # Classes 0, 1; predictions from the logits: 0, 0, 1, 1, 0, 1.
    logits = np.array([[1, 0], [2, 0], [0, 1], [0, 3], [1, 0], [0, 1]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    has_cue = np.array([False, True, True, False, False, True])
    accuracy, counts = shortcuts.group_accuracy(logits, labels, has_cue)
    # Groups (label, cue): (0,F): {0} right; (0,T): {1 right, 2 wrong}; (1,F): {3 right,
    # 4 wrong}; (1,T): {5} right.
    np.testing.assert_array_equal(counts, [[1, 2], [2, 1]])
    np.testing.assert_allclose(accuracy, [[1.0, 0.5], [0.5, 1.0]])
    assert float(shortcuts.worst_group_accuracy(logits, labels, has_cue)) == 0.5
    accuracy, counts = shortcuts.group_accuracy(logits[:3], labels[:3], has_cue[:3])
    assert np.isnan(accuracy[1]).all() and counts[1].tolist() == [0, 0]
    assert float(shortcuts.worst_group_accuracy(logits[:3], labels[:3], has_cue[:3])) == 0.5


def test_cue_saliency_fraction_hand_made():
    maps = np.array([[[1.0, -3.0], [0.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]], np.float32)
    mask = np.array([[True, True], [False, False]])
    np.testing.assert_allclose(shortcuts.cue_saliency_fraction(maps, mask), [0.5, 0.0])
    per_example = np.stack([mask, ~mask])
    np.testing.assert_allclose(shortcuts.cue_saliency_fraction(maps, per_example), [0.5, 1.0])


@pytest.mark.slow
def test_logistic_regression_learns_a_perfectly_correlated_token():
    # Zech et al. in miniature: the token marks exactly the zeros in training (phi = 1). Digits'
    # top-left pixels are always 0, so the token is a clean, easy feature for class 0.
    x, y = data.load_digits(as_images=True)
    x_train, _ = shortcuts.plant_token_images(jax.random.key(0), x[:1200], y[:1200],
                                              correlation=1.0, token_class=0)
    model = nn.serial(nn.flatten(), nn.dense(10))
    _, params = model.init(jax.random.key(0), (8, 8, 1))
    params = train.fit(model.apply, params, x_train, y[:1200],
                       loss="softmax_cross_entropy_with_integer_labels",
                       optimizer=optax.adam(5e-2), key=jax.random.key(1), batch_size=100,
                       steps=300).params
    report = shortcuts.shortcut_report(model.apply, params, x[1200:], y[1200:],
                                       shortcuts.token_cue((8, 8, 1)), token_class=0,
                                       saliency="gradient_x_input")
    # Thresholds hold with a margin (measured: clean 0.85, flipped 0.77, zeros without token
    # 0.31 vs 1.0 with it, saliency share 0.24 vs area 0.0625); the same model trained with the
    # token independent of the label (phi = 0) gives a drop of 0.01 and a worst group of 0.79.
    assert report["accuracy_drop_flipped"] > 0.05
    accuracy = np.asarray(report["group_accuracy"])
    assert accuracy[0, 1] == 1.0 and accuracy[0, 0] < 0.5          # zeros need the token
    assert report["worst_group_accuracy"] == pytest.approx(np.nanmin(accuracy))
    assert report["worst_group_accuracy"] < 0.5
    assert report["token_only_accuracy"] == 1.0 and report["background_only_accuracy"] == 0.0
    assert report["cue_area_fraction"] == pytest.approx(4 / 64)
    assert report["cue_saliency_fraction"] > 2 * report["cue_area_fraction"]
    logits = train.predict(model.apply, params, x[1200:])
    assert report["accuracy_clean"] == pytest.approx(float(jnp.mean(
        jnp.argmax(logits, axis=1) == y[1200:])))


# ------------------------------------------------------------------------------ bad inputs

def _bad_calls():
    x, y = _images(), _labels()
    key = jax.random.key(0)
    cue = shortcuts.token_cue((6, 5, 2))
    boxes = np.array([[0, 0, 3, 3]] * 40, np.int32)

    def apply(p, xb):
        return xb.reshape(xb.shape[0], -1) @ p

    w = np.zeros((60, 4), np.float32)
    return [
        (lambda: shortcuts.plant_token_images(key, x, y, correlation=1.5), ValueError,
         r"`correlation` must lie in \[0.0, 1.0\]"),
        (lambda: shortcuts.plant_token_images(key, x, y, corner="middle"), ValueError,
         "`corner` must be one of"),
        (lambda: shortcuts.plant_token_images(key, x, y, size=7), ValueError, "must fit"),
        (lambda: shortcuts.plant_token_images(key, x, y, mode="sometimes"), ValueError,
         "`mode` must be one of"),
        (lambda: shortcuts.plant_token_images(key, x, y[:10]), ValueError,
         "`x` has 40 samples but `labels` has 10"),
        (lambda: shortcuts.plant_token_images(key, x, y.astype(np.float32)), TypeError,
         "integer class labels"),
        (lambda: shortcuts.plant_token_images(key, x, y, token_class=9), ValueError,
         "no example has that label"),
        (lambda: shortcuts.plant_token_images(key, x[..., 0], y), ValueError, "4 dimensions"),
        (lambda: shortcuts.plant_token_images(1, x, y), TypeError, "jax.random key"),
        (lambda: shortcuts.plant_bump_1d(key, x[:, :, 0, 0], y, position=6), ValueError,
         r"`position` must lie in \[0, 6\)"),
        (lambda: shortcuts.plant_bump_1d(key, x[:, :, 0, 0], y, position=2, width=0.0),
         ValueError, "`width` must be > 0"),
        (lambda: shortcuts.apply_cue(x[:, :5], cue), ValueError, "cue is for examples of shape"),
        (lambda: shortcuts.erase_object(x, np.zeros((40, 6, 5), np.float32)), TypeError,
         "bool array"),
        (lambda: shortcuts.erase_object(x, np.zeros((40, 6, 4), bool)), ValueError,
         r"`masks` must have shape \[n, height, width\]"),
        (lambda: shortcuts.keep_bbox(x, boxes[:, :3]), ValueError, r"shape \[n, 4\]"),
        (lambda: shortcuts.keep_bbox(x, np.array([[0, 0, 7, 3]] * 40)), ValueError,
         r"`boxes\[0\]` = \[0, 0, 7, 3\] is not a box"),
        (lambda: shortcuts.keep_bbox(x, boxes[:3]), ValueError, "`images` has 40 samples"),
        (lambda: shortcuts.keep_border(x, 3), ValueError, "at most 2 pixels"),
        (lambda: shortcuts.group_accuracy(np.zeros((3, 2), np.float32), np.array([0, 1, 2]),
                                          np.zeros(3, bool)), ValueError, "label 2"),
        (lambda: shortcuts.group_accuracy(np.zeros((3, 2), np.float32), np.array([0, 1, 1]),
                                          np.zeros(3)), TypeError, "`has_cue` must be a bool"),
        (lambda: shortcuts.cue_saliency_fraction(x, np.zeros((6, 5), bool)), ValueError,
         "`cue_mask` must have the shape"),
        (lambda: shortcuts.shortcut_report(apply, w, x, y, cue, token_class=4), ValueError,
         "`token_class` is 4 but the model has 4 classes"),
        (lambda: shortcuts.shortcut_report(apply, w, x, y, cue.mask, token_class=0), TypeError,
         "`cue` must be a Cue"),
        (lambda: shortcuts.shortcut_report(apply, w, x, y, cue, token_class=0,
                                           saliency="lime"), ValueError,
         "`saliency` must be one of"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_arguments_raise_clear_errors(case):
    call, error, fragment = _bad_calls()[case]
    with pytest.raises(error, match=fragment):
        call()
