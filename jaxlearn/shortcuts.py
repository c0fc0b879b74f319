"""Shortcut learning and dataset bias: plant a spurious cue, ablate the object, and measure how much
a classifier relies on what it should not.

A *cue* is a small pattern that does not belong to the object: the "hospital token" of Zech et
al. (2018), a bright patch in a corner of an image, or a bump at a fixed position of an MNIST-1D
signal. :func:`plant_token_images` / :func:`plant_bump_1d` draw it on a chosen fraction of the
examples so that its presence ``T`` correlates with ``Y = [label == token_class]`` as requested;
test sets use ``mode="absent"``, ``"all"`` or ``"flipped"`` (the cue on every *other* class).

Correlation means the phi coefficient (Pearson's correlation of the two binary variables)
``phi(T, Y) = (P(T, Y) - P(T) P(Y)) / sqrt(P(T)(1 - P(T)) P(Y)(1 - P(Y)))``. For ``rho`` in
``[0, 1]`` the builder puts the cue on a fraction ``q1 = rho + (1 - rho) p`` of the token class
and ``q0 = (1 - rho) p`` of the others, with ``p`` the token class's share of the data; then
``P(T) = p`` and ``phi = rho`` exactly (``rho = 1``: the cue marks exactly the token class;
``rho = 0``: the cue is independent of the label, on a fraction ``p`` of every class). Counts are
rounded to whole examples (``round(q1 n1)`` and ``round(q0 n0)``), chosen at random within each
group, so the realised phi (:func:`cue_correlation`) is ``rho`` up to rounding.

The ablations of Bissoto et al. (2019) remove the object to see what is left to learn:
:func:`erase_object` keeps only the background, :func:`keep_bbox` only the bounding box,
:func:`keep_border` only a frame along the edges.

:func:`shortcut_report` measures, in one call: accuracy without, with and against the cue,
worst-group accuracy over ``(label, cue)`` groups, "token only" accuracy, and the share of
saliency on the cue.

Example::

    >>> x, digit = jl.data.load_digits(as_images=True)     # [1797, 8, 8, 1] in [0, 1]
    >>> y = (digit != 0).astype(np.int32)                   # class 0: "is a zero"
    >>> x_train, has_token = plant_token_images(jax.random.key(0), x, y, correlation=1.0,
    ...                                         token_class=0)
    >>> cue_correlation(has_token, y, token_class=0)         # the token marks exactly class 0
    1.0

    A model trained on ``x_train`` may learn the token instead of the digit. The extreme case,
    a "model" that reads only the top-left corner, is caught by the report::

    >>> def corner_reader(params, x):
    ...     corner = x[:, :2, :2, 0].mean(axis=(1, 2))
    ...     return jnp.stack([10.0 * corner, jnp.full_like(corner, 5.0)], axis=1)
    >>> report = shortcut_report(corner_reader, None, x[:200], y[:200], token_cue((8, 8, 1)),
    ...                          token_class=0)
    >>> report["token_only_accuracy"], report["worst_group_accuracy"]
    (1.0, 0.0)
    >>> report["cue_saliency_fraction"], report["cue_area_fraction"]   # all of it on 1/16
    (1.0, 0.0625)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks, explain
from jaxlearn._types import Array, Params
from jaxlearn.apply import as_apply
from jaxlearn.evaluation import predict

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
PLANT_MODES = ("correlated", "absent", "all", "flipped")
REPORT_SALIENCY = ("gradient", "gradient_x_input", "integrated_gradients")


# ------------------------------------------------------------------------------------ cues

class Cue(NamedTuple):
    """A spurious cue, for one example.

    Attributes:
      mask: bool ``[*example_shape]``: where the cue lies (its region, for saliency shares).
      values: float ``[*example_shape]``, zero outside ``mask``.
      additive: True: the cue is added, ``x + values``; False: it is painted over,
        ``where(mask, values, x)``.
    """

    mask: Array
    values: Array
    additive: bool


def token_cue(image_shape: Sequence[int], *, size: int = 2, value: float = 1.0,
              corner: str = "top_left") -> Cue:
    """A ``size x size`` patch of constant ``value`` in a corner of a channels-last image, on all
    channels (painted over the image).

    Args:
      image_shape: ``(height, width, channels)`` of one image.
      size: side of the square patch, in ``[1, min(height, width)]``.
      value: the patch's pixel value (1.0 is the brightest pixel of
        :func:`jaxlearn.data.load_digits`).
      corner: one of :data:`CORNERS`.
    """
    image_shape = _check_shape("image_shape", image_shape, 3, "(height, width, channels)")
    height, width, _ = image_shape
    _checks.check_positive("size", size, integer=True)
    if size > min(height, width):
        raise ValueError(f"`size` is {size} but the image is {height}x{width}; the patch must fit")
    _checks.check_number("value", value)
    _checks.check_choice("corner", corner, CORNERS)
    rows = slice(0, size) if corner.startswith("top") else slice(height - size, height)
    cols = slice(0, size) if corner.endswith("left") else slice(width - size, width)
    mask = np.zeros(image_shape, bool)
    mask[rows, cols, :] = True
    return Cue(jnp.asarray(mask), jnp.asarray(np.where(mask, value, 0.0), jnp.float32), False)


def bump_cue(signal_shape: Sequence[int], *, position: int, width: float = 1.0,
             height: float = 3.0) -> Cue:
    """A Gaussian bump ``height * exp(-(t - position)^2 / (2 width^2))`` added to a 1-D signal
    (on every channel), cut to its region ``|t - position| <= 3 width``.

    Args:
      signal_shape: ``(length,)`` or ``(length, channels)`` of one signal.
      position: centre of the bump, in ``[0, length)``.
      width: standard deviation of the bump in samples, ``> 0``.
      height: peak value added (MNIST-1D signals span about [-3, 3]).
    """
    signal_shape = _check_shape("signal_shape", signal_shape, (1, 2),
                                "(length,) or (length, channels)")
    length = signal_shape[0]
    _checks.check_number("position", position, integer=True)
    if not 0 <= position < length:
        raise ValueError(f"`position` must lie in [0, {length}) for signals of length {length}, "
                         f"got {position}")
    _checks.check_positive("width", width)
    _checks.check_number("height", height)
    t = np.arange(length, dtype=np.float64)
    region = np.abs(t - position) <= 3 * width
    profile = np.where(region, height * np.exp(-((t - position) ** 2) / (2 * width ** 2)), 0.0)
    trailing = (1,) * (len(signal_shape) - 1)
    mask = np.broadcast_to(region.reshape(length, *trailing), signal_shape)
    values = np.broadcast_to(profile.reshape(length, *trailing), signal_shape)
    return Cue(jnp.asarray(mask), jnp.asarray(values, jnp.float32), True)


def apply_cue(x: Array, cue: Cue) -> Array:
    """``x`` with the cue on every example: ``x + values`` or ``where(mask, values, x)``.

    Shapes: ``x`` ``[batch, *example_shape]``; returns the same shape.
    """
    x = _check_x_for_cue("x", x, cue)
    return _apply_cue(x, cue.mask, cue.values, cue.additive)


@functools.partial(jax.jit, static_argnums=3)
def _apply_cue(x, mask, values, additive):
    values = values.astype(x.dtype)[None]     # one example's cue, on every example of the batch
    return x + values if additive else jnp.where(mask[None], values, x)


def _check_cue(cue: Any) -> Cue:
    if not isinstance(cue, Cue):
        raise TypeError(f"`cue` must be a Cue (from token_cue or bump_cue), got "
                        f"{type(cue).__name__}")
    return cue


def _check_x_for_cue(name: str, x: Any, cue: Any) -> Array:
    cue = _check_cue(cue)
    x = _checks.as_array(name, x)
    _checks.check_float(name, x)
    _checks.check_nonempty(name, x)
    if tuple(x.shape[1:]) != tuple(cue.mask.shape):
        raise ValueError(f"`{name}` has examples of shape {tuple(x.shape[1:])} but the cue is for "
                         f"examples of shape {tuple(cue.mask.shape)}")
    return jnp.asarray(x)


# -------------------------------------------------------------------------------- planting

def _token_counts(labels: np.ndarray, token_class: int, correlation: float) -> tuple[int, int]:
    """``(k1, k0)``: how many examples of the token class / of the others get the cue."""
    n1 = int(np.sum(labels == token_class))
    n0 = labels.shape[0] - n1
    p = n1 / labels.shape[0]
    q1, q0 = correlation + (1 - correlation) * p, (1 - correlation) * p
    return round(q1 * n1), round(q0 * n0)


def plant_cue(key: Array, x: Array, labels: Array, cue: Cue, *, correlation: float = 1.0,
              token_class: int = 0, mode: str = "correlated") -> tuple[Array, Array]:
    """Draws ``cue`` on a subset of the examples, chosen to correlate with the label.

    Modes:

    * ``"correlated"``: the cue on ``round(q1 n1)`` random examples of ``token_class`` and
      ``round(q0 n0)`` random others, ``q1 = rho + (1 - rho) p``, ``q0 = (1 - rho) p`` (see the
      module docstring): phi coefficient ``rho`` between cue and ``[label == token_class]``;
    * ``"absent"``: no cue (a clean test set);
    * ``"all"``: the cue on every example;
    * ``"flipped"``: the cue on every example *not* of ``token_class`` (phi = -1).

    Args:
      key: a ``jax.random`` key (used by ``"correlated"`` only).
      x: float examples ``[n, *example_shape]``.
      labels: integer labels ``[n]``.
      cue: a :class:`Cue` for ``example_shape``.
      correlation: ``rho`` in ``[0, 1]``.
      token_class: the class the cue is associated with.
      mode: one of :data:`PLANT_MODES`.

    Returns:
      ``(x_planted, has_cue)``: ``[n, *example_shape]`` and bool ``[n]``.
    """
    _checks.check_key("key", key)
    x = _check_x_for_cue("x", x, cue)
    _checks.check_finite("x", x)
    labels = _check_labels("labels", labels, "x", x)
    _checks.check_in_range("correlation", correlation, 0.0, 1.0, include_high=True)
    _checks.check_number("token_class", token_class, integer=True)
    if token_class < 0:
        raise ValueError(f"`token_class` must be a class index >= 0, got {token_class}")
    _checks.check_choice("mode", mode, PLANT_MODES)
    is_token_class = labels == token_class
    if mode == "absent":
        has_cue = jnp.zeros(labels.shape, bool)
    elif mode == "all":
        has_cue = jnp.ones(labels.shape, bool)
    elif mode == "flipped":
        has_cue = jnp.asarray(~is_token_class)
    else:
        if not is_token_class.any():
            raise ValueError(f"`token_class` is {token_class} but no example has that label; "
                             "the cue could not correlate with it")
        k1, k0 = _token_counts(labels, token_class, correlation)
        has_cue = _choose_within_groups(key, jnp.asarray(is_token_class), k1, k0)
    planted = _apply_cue(x, cue.mask, cue.values, cue.additive)
    where = has_cue.reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.where(where, planted, x), has_cue


@jax.jit
def _choose_within_groups(key, in_group, k1, k0):
    """``k1`` random members of the group and ``k0`` random non-members, as a bool mask."""
    u = jax.random.uniform(key, in_group.shape)
    order_key = in_group.astype(u.dtype) * 2.0 + u          # non-members first, then members
    position = jnp.argsort(jnp.argsort(order_key))
    n_out = jnp.sum(~in_group)
    rank = jnp.where(in_group, position - n_out, position)
    return jnp.where(in_group, rank < k1, rank < k0)


def plant_token_images(key: Array, images: Array, labels: Array, *, correlation: float = 1.0,
                       token_class: int = 0, size: int = 2, value: float = 1.0,
                       corner: str = "top_left",
                       mode: str = "correlated") -> tuple[Array, Array]:
    """The "hospital token" (Zech et al. 2018): a bright ``size x size`` patch in a corner,
    planted on images so that its presence has phi coefficient ``correlation`` with
    ``[label == token_class]``. See :func:`token_cue` for the patch and :func:`plant_cue` for
    ``mode`` and the exact rule.

    Shapes: ``images`` float ``[n, height, width, channels]``, ``labels`` int ``[n]``. Returns
    ``(images_planted [n, h, w, c], has_token bool [n])``; ``token_cue(images.shape[1:], size=...,
    value=..., corner=...)`` gives the same cue for :func:`shortcut_report`.
    """
    images = _checks.as_array("images", images)
    _checks.check_ndim("images", images, 4)
    cue = token_cue(images.shape[1:], size=size, value=value, corner=corner)
    return plant_cue(key, images, labels, cue, correlation=correlation, token_class=token_class,
                     mode=mode)


def plant_bump_1d(key: Array, signals: Array, labels: Array, *, position: int,
                  correlation: float = 1.0, token_class: int = 0, width: float = 1.0,
                  height: float = 3.0, mode: str = "correlated") -> tuple[Array, Array]:
    """A Gaussian bump at a fixed ``position`` added to 1-D signals (e.g. MNIST-1D), planted so
    that its presence has phi coefficient ``correlation`` with ``[label == token_class]``. See
    :func:`bump_cue` for the bump and :func:`plant_cue` for ``mode`` and the exact rule.

    Shapes: ``signals`` float ``[n, length]`` or ``[n, length, channels]``, ``labels`` int ``[n]``.
    Returns ``(signals_planted, has_bump bool [n])``.
    """
    signals = _checks.as_array("signals", signals)
    _checks.check_ndim("signals", signals, (2, 3))
    cue = bump_cue(signals.shape[1:], position=position, width=width, height=height)
    return plant_cue(key, signals, labels, cue, correlation=correlation,
                     token_class=token_class, mode=mode)


def cue_correlation(has_cue: Array, labels: Array, *, token_class: int) -> float:
    """Phi coefficient between cue presence and ``[label == token_class]`` (Pearson's
    correlation of the two binary variables), from the 2x2 counts:
    ``(n11 n00 - n10 n01) / sqrt(n1. n0. n.1 n.0)``. NaN if either variable is constant.

    Shapes: ``has_cue`` bool ``[n]``, ``labels`` int ``[n]``.
    """
    has_cue = _checks.as_array("has_cue", has_cue)
    if has_cue.dtype != bool:
        raise TypeError(f"`has_cue` must be a bool array, got dtype {has_cue.dtype}")
    _checks.check_ndim("has_cue", has_cue, 1)
    _checks.check_nonempty("has_cue", has_cue)
    labels = _check_labels("labels", labels, "has_cue", has_cue)
    _checks.check_number("token_class", token_class, integer=True)
    t = np.asarray(has_cue)
    y = labels == token_class
    n11, n10 = int(np.sum(t & y)), int(np.sum(t & ~y))
    n01, n00 = int(np.sum(~t & y)), int(np.sum(~t & ~y))
    denominator = math.sqrt(float((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)))
    return (n11 * n00 - n10 * n01) / denominator if denominator else float("nan")


# ------------------------------------------------------------------------------- ablations

def box_masks(boxes: Array, height: int, width: int) -> Array:
    """Boolean masks ``[n, height, width]`` of boxes ``[n, 4]`` = ``(top, left, bottom, right)``,
    half-open: pixel ``(r, c)`` is inside iff ``top <= r < bottom`` and ``left <= c < right``."""
    _checks.check_positive("height", height, integer=True)
    _checks.check_positive("width", width, integer=True)
    boxes = _check_boxes(boxes, height, width)
    return _box_masks(boxes, height, width)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _box_masks(boxes, height, width):
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def erase_object(images: Array, masks: Array, *, fill: float = 0.0) -> Array:
    """Bissoto et al. (2019) "background only": the object's pixels (``masks`` True) set to
    ``fill``, the background kept. Use ``box_masks`` to erase a bounding box instead.

    Shapes: ``images`` float ``[n, height, width, channels]``, ``masks`` bool ``[n, height,
    width]`` (all channels erased). Returns ``[n, height, width, channels]``.
    """
    images = _check_images("images", images)
    masks = _check_masks(masks, images)
    _checks.check_number("fill", fill)
    return _fill_where(images, masks, fill)


def keep_bbox(images: Array, boxes: Array, *, fill: float = 0.0) -> Array:
    """Bissoto et al. (2019) "bounding box only": pixels outside each image's box set to
    ``fill``.

    Shapes: ``images`` float ``[n, height, width, channels]``; ``boxes`` int ``[n, 4]`` =
    ``(top, left, bottom, right)``, half-open as in :func:`box_masks`. Returns the images' shape.
    """
    images = _check_images("images", images)
    boxes = _check_boxes(boxes, images.shape[1], images.shape[2])
    _checks.check_same_length("images", images, "boxes", boxes)
    _checks.check_number("fill", fill)
    inside = _box_masks(boxes, images.shape[1], images.shape[2])
    return _fill_where(images, ~inside, fill)


def keep_border(images: Array, width: int, *, fill: float = 0.0) -> Array:
    """Keeps a frame of ``width`` pixels along the four edges, sets the inside to ``fill``
    (Bissoto et al.'s border-only ablation: what the image's edges alone tell).

    Shapes: ``images`` float ``[n, height, width, channels]``; ``width`` in ``[1, (min(height,
    width) - 1) // 2]`` so that something is erased. Returns the images' shape.
    """
    images = _check_images("images", images)
    _checks.check_positive("width", width, integer=True)
    h, w = images.shape[1], images.shape[2]
    largest = (min(h, w) - 1) // 2
    if width > largest:
        raise ValueError(f"`width` is {width} but a frame of at most {largest} pixels leaves "
                         f"an inside to erase in {h}x{w} images")
    inner = jnp.asarray([[width, width, h - width, w - width]] * images.shape[0])
    return _fill_where(images, _box_masks(inner, h, w), fill)


@jax.jit
def _fill_where(images, masks, fill):
    return jnp.where(masks[..., None], jnp.asarray(fill, images.dtype), images)


def _check_images(name: str, images: Any) -> Array:
    images = _checks.as_array(name, images)
    _checks.check_float(name, images)
    if images.ndim != 4:
        raise ValueError(f"`{name}` must be channels-last images [n, height, width, channels], "
                         f"got shape {tuple(images.shape)}")
    _checks.check_nonempty(name, images)
    return jnp.asarray(images)


def _check_masks(masks: Any, images: Array) -> Array:
    masks = _checks.as_array("masks", masks)
    if masks.dtype != bool:
        raise TypeError(f"`masks` must be a bool array (True on the object), got dtype "
                        f"{masks.dtype}")
    if tuple(masks.shape) != tuple(images.shape[:3]):
        raise ValueError(f"`masks` must have shape [n, height, width] = {tuple(images.shape[:3])}"
                         f" to match `images`, got {tuple(masks.shape)}")
    return jnp.asarray(masks)


def _check_boxes(boxes: Any, height: int, width: int) -> Array:
    boxes = _checks.as_array("boxes", boxes)
    if not np.issubdtype(np.dtype(boxes.dtype), np.integer):
        raise TypeError(f"`boxes` must hold integer pixel coordinates, got dtype {boxes.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"`boxes` must have shape [n, 4] (top, left, bottom, right), got "
                         f"{tuple(boxes.shape)}")
    if _checks.is_concrete(boxes) and boxes.shape[0]:
        b = np.asarray(boxes)
        bad = ~((0 <= b[:, 0]) & (b[:, 0] < b[:, 2]) & (b[:, 2] <= height)
                & (0 <= b[:, 1]) & (b[:, 1] < b[:, 3]) & (b[:, 3] <= width))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"`boxes[{i}]` = {b[i].tolist()} is not a box inside {height}x{width}"
                             " images: need 0 <= top < bottom <= height and "
                             "0 <= left < right <= width")
    return jnp.asarray(boxes)


# -------------------------------------------------------------------------------- measures

def group_accuracy(logits: Array, labels: Array, has_cue: Array) -> tuple[Array, Array]:
    """Accuracy in every group ``(label, cue present)``.

    Shapes: ``logits`` float ``[n, n_classes]``, ``labels`` int ``[n]``, ``has_cue`` bool ``[n]``.

    Returns:
      ``(accuracy, counts)``, both ``[n_classes, 2]`` (column 1: with the cue); accuracy is NaN
      for an empty group.
    """
    logits, labels, has_cue = _check_group_args(logits, labels, has_cue)
    return _group_accuracy(logits, labels, has_cue)


@jax.jit
def _group_accuracy(logits, labels, has_cue):
    n_classes = logits.shape[1]
    group = labels * 2 + has_cue.astype(labels.dtype)
    correct = (jnp.argmax(logits, axis=1) == labels).astype(jnp.float32)
    hits = jax.ops.segment_sum(correct, group, num_segments=2 * n_classes)
    counts = jax.ops.segment_sum(jnp.ones_like(correct), group, num_segments=2 * n_classes)
    accuracy = jnp.where(counts > 0, hits / jnp.maximum(counts, 1), jnp.nan)
    return accuracy.reshape(n_classes, 2), counts.astype(jnp.int32).reshape(n_classes, 2)


def worst_group_accuracy(logits: Array, labels: Array, has_cue: Array) -> Array:
    """The lowest accuracy over the non-empty groups ``(label, cue present)`` (Sagawa et al.
    2020). Shapes as in :func:`group_accuracy`; returns a scalar."""
    accuracy, _ = group_accuracy(logits, labels, has_cue)
    return jnp.nanmin(accuracy)


def _check_group_args(logits, labels, has_cue):
    logits = _checks.as_array("logits", logits)
    _checks.check_float("logits", logits)
    _checks.check_ndim("logits", logits, 2)
    _checks.check_nonempty("logits", logits)
    labels = _checks.as_array("labels", labels)
    _checks.check_labels("labels", labels, logits.shape[1])
    _checks.check_ndim("labels", labels, 1)
    has_cue = _checks.as_array("has_cue", has_cue)
    if has_cue.dtype != bool:
        raise TypeError(f"`has_cue` must be a bool array, got dtype {has_cue.dtype}")
    _checks.check_ndim("has_cue", has_cue, 1)
    _checks.check_same_length("logits", logits, "labels", labels)
    _checks.check_same_length("logits", logits, "has_cue", has_cue)
    return jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(has_cue)


def cue_saliency_fraction(maps: Array, cue_mask: Array) -> Array:
    """Share of the absolute attribution that falls on the cue:
    ``sum_{j in cue} |m_j| / sum_j |m_j|`` per example (NaN for an all-zero map).

    Compare it with the cue's share of the input, ``mean(cue_mask)``: a model that ignores the
    cue puts about that much (or less) attribution on it.

    Shapes: ``maps`` float ``[batch, *example_shape]``; ``cue_mask`` bool ``[*example_shape]``
    (one region for all) or ``[batch, *example_shape]``. Returns ``[batch]``.
    """
    maps = _checks.as_array("maps", maps)
    _checks.check_float("maps", maps)
    _checks.check_nonempty("maps", maps)
    cue_mask = _checks.as_array("cue_mask", cue_mask)
    if cue_mask.dtype != bool:
        raise TypeError(f"`cue_mask` must be a bool array, got dtype {cue_mask.dtype}")
    if tuple(cue_mask.shape) not in (tuple(maps.shape), tuple(maps.shape[1:])):
        raise ValueError(f"`cue_mask` must have the shape of one map {tuple(maps.shape[1:])} or "
                         f"of `maps` {tuple(maps.shape)}, got {tuple(cue_mask.shape)}")
    return _cue_saliency_fraction(jnp.asarray(maps), jnp.asarray(cue_mask))


@jax.jit
def _cue_saliency_fraction(maps, cue_mask):
    magnitude = jnp.abs(maps).reshape(maps.shape[0], -1)
    on_cue = jnp.broadcast_to(cue_mask, maps.shape).reshape(maps.shape[0], -1)
    return jnp.sum(jnp.where(on_cue, magnitude, 0.0), axis=1) / jnp.sum(magnitude, axis=1)


def shortcut_report(apply_fn: Callable, params: Params, x_test: Array, y_test: Array, cue: Cue,
                    *, token_class: int, backgrounds: Array | None = None,
                    saliency: str = "gradient") -> dict[str, Any]:
    """How much a classifier relies on a cue, in one call.

    ``x_test`` should be free of the cue (a clean test set); the cue is planted on copies of it
    with :func:`apply_cue`. Returned dict (floats unless stated):

    * ``accuracy_clean``: accuracy on ``x_test`` as given;
    * ``accuracy_cue_all``: with the cue on every example;
    * ``accuracy_cue_flipped``: with the cue on every example not of ``token_class`` (the
      training correlation reversed); ``accuracy_drop_flipped`` = clean minus flipped;
    * ``group_accuracy`` (list ``[n_classes][2]``, column 1 with the cue) and
      ``worst_group_accuracy``: over groups ``(label, cue)`` of the ``2 n`` examples made of
      ``x_test`` without and with the cue (every group populated);
    * ``token_only_accuracy``: fraction of ``backgrounds`` + cue classified as ``token_class``,
      next to ``background_only_accuracy``, the same without the cue (default background: one
      all-zero input, a blank image or flat signal);
    * ``cue_saliency_fraction``: mean over the examples with the cue of
      :func:`cue_saliency_fraction` of their maps (``saliency``: one of :data:`REPORT_SALIENCY`,
      explaining the predicted class), next to ``cue_area_fraction``, the share of the input the
      cue covers.

    Args:
      apply_fn: ``apply(params, x, ...)`` returning logits ``[batch, n_classes]``.
      params: the model's params pytree.
      x_test: float ``[n, *example_shape]``, without the cue.
      y_test: integer labels ``[n]``.
      cue: the :class:`Cue` planted at training time.
      token_class: the class the cue was associated with.
      backgrounds: float ``[m, *example_shape]`` to draw the cue on for "token only" (e.g.
        object-erased images); default one all-zero input.
      saliency: attribution method for the saliency share.
    """
    apply = as_apply(apply_fn)
    x_test = _check_x_for_cue("x_test", x_test, cue)
    _checks.check_finite("x_test", x_test)
    n_classes = _n_classes(apply, params, x_test)
    y_test = _check_labels("y_test", y_test, "x_test", x_test)
    _checks.check_labels("y_test", y_test, n_classes)
    _checks.check_number("token_class", token_class, integer=True)
    if not 0 <= token_class < n_classes:
        raise ValueError(f"`token_class` is {token_class} but the model has {n_classes} classes")
    if backgrounds is None:
        backgrounds = jnp.zeros((1, *x_test.shape[1:]), x_test.dtype)
    backgrounds = _check_x_for_cue("backgrounds", backgrounds, cue)
    _checks.check_choice("saliency", saliency, REPORT_SALIENCY)

    y = jnp.asarray(y_test)
    with_cue = _apply_cue(x_test, cue.mask, cue.values, cue.additive)
    not_token = (y != token_class).reshape((-1,) + (1,) * (x_test.ndim - 1))
    flipped = jnp.where(not_token, with_cue, x_test)
    logits_clean = predict(apply, params, x_test)
    logits_cue = predict(apply, params, with_cue)
    logits_flipped = predict(apply, params, flipped)
    accuracy, _ = _group_accuracy(
        jnp.concatenate([logits_clean, logits_cue]), jnp.concatenate([y, y]),
        jnp.concatenate([jnp.zeros(y.shape, bool), jnp.ones(y.shape, bool)]))
    on_token = predict(apply, params, _apply_cue(backgrounds, cue.mask, cue.values, cue.additive))
    off_token = predict(apply, params, backgrounds)
    maps = {"gradient": explain.saliency, "gradient_x_input": explain.gradient_x_input,
            "integrated_gradients": explain.integrated_gradients}[saliency](apply, params,
                                                                          with_cue)

    def acc(logits):
        return float(jnp.mean(jnp.argmax(logits, axis=1) == y))

    clean, flipped_acc = acc(logits_clean), acc(logits_flipped)
    return {
        "accuracy_clean": clean,
        "accuracy_cue_all": acc(logits_cue),
        "accuracy_cue_flipped": flipped_acc,
        "accuracy_drop_flipped": clean - flipped_acc,
        "group_accuracy": np.asarray(accuracy).tolist(),
        "worst_group_accuracy": float(jnp.nanmin(accuracy)),
        "token_only_accuracy": float(jnp.mean(jnp.argmax(on_token, axis=1) == token_class)),
        "background_only_accuracy": float(jnp.mean(jnp.argmax(off_token, axis=1)
                                                   == token_class)),
        "cue_saliency_fraction": float(jnp.nanmean(_cue_saliency_fraction(maps, cue.mask))),
        "cue_area_fraction": float(jnp.mean(cue.mask)),
    }


# --------------------------------------------------------------------------------- helpers

def _n_classes(apply: Callable, params: Params, x: Array) -> int:
    return _checks.check_classifier(apply, params, x)


def _check_labels(name: str, labels: Any, x_name: str, x: Any) -> np.ndarray:
    labels = _checks.as_array(name, labels)
    _checks.check_labels(name, labels)
    _checks.check_ndim(name, labels, 1)
    _checks.check_same_length(x_name, x, name, labels)
    return np.asarray(labels)


def _check_shape(name: str, shape: Any, ndim: int | tuple[int, ...], what: str) -> tuple:
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if not isinstance(shape, Sequence) or len(shape) not in allowed:
        raise ValueError(f"`{name}` must be {what}, got {shape!r}")
    for i, s in enumerate(shape):
        _checks.check_positive(f"{name}[{i}]", s, integer=True)
    return tuple(int(s) for s in shape)
