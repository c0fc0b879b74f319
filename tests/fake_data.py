"""Small fake files in the exact formats of real ones, for tests (``from fake_data import ...``).

Every image carries a learnable class signal: class ``k`` has its own mean colour (a point on a
colour wheel, or a grey level), plus Gaussian pixel noise; a linear model on the mean pixel
separates the classes. Everything is seeded: the same arguments write the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"


def class_colours(n_classes: int, n_channels: int) -> np.ndarray:
    """Mean pixel value of each class, in ``[60, 196]`` (``[n_classes, n_channels]``): grey levels
    evenly spaced for one channel, hues around a colour wheel for three."""
    k = np.arange(n_classes)
    if n_channels == 1:
        return (60.0 + 136.0 * k / max(n_classes - 1, 1))[:, None]
    angle = 2 * np.pi * k / n_classes
    phases = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    return 128.0 + 68.0 * np.cos(angle[:, None] - phases[None, :])


def fake_images(rng: np.random.Generator, labels: np.ndarray, size: int | tuple[int, int],
                n_channels: int, n_classes: int, *, noise: float = 20.0) -> np.ndarray:
    """uint8 images ``[n, H, W, n_channels]``: the class's mean colour plus N(0, noise^2)."""
    height, width = (size, size) if isinstance(size, int) else size
    means = class_colours(n_classes, n_channels)[labels]
    pixels = means[:, None, None, :] + noise * rng.standard_normal(
        (len(labels), height, width, n_channels))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def medmnist_file_name(flag: str, size: int) -> str:
    """``dermamnist.npz`` for size 28, ``dermamnist_64.npz`` otherwise (medmnist's names)."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def write_fake_medmnist(path: str | os.PathLike, *, flag: str = "dermamnist", size: int = 28,
                        n: tuple[int, int, int] = (70, 10, 20), n_channels: int = 3,
                        n_classes: int = 7, seed: int = 0, multilabel: int = 0) -> Path:
    """Writes a MedMNIST-format ``.npz``: ``{train,val,test}_images`` uint8 ``[n, size, size]``
    (one channel) or ``[n, size, size, 3]``, ``{train,val,test}_labels`` uint8 ``[n, 1]``
    (``[n, multilabel]`` 0/1 indicators when ``multilabel > 0``), compressed as the real ones.

    Args:
      path: a folder (the file is named as medmnist names it: ``<flag>.npz`` or
        ``<flag>_<size>.npz``) or the ``.npz`` path itself.
      n: examples in the train, val and test splits.
      multilabel: number of 0/1 labels per image (0: one class label in ``[0, n_classes)``).
        Label ``j`` of a multi-label image brightens its ``j``-th horizontal band.

    Returns:
      The path of the file written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path / medmnist_file_name(flag, size)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        if multilabel:
            labels = (rng.random((count, multilabel)) < 0.4).astype(np.uint8)
            images = fake_images(rng, np.zeros(count, int), size, n_channels, 1)
            band = max(size // multilabel, 1)
            for j in range(multilabel):
                lit = labels[:, j].astype(bool)
                rows = slice(j * band, (j + 1) * band)
                images[lit, rows] = np.clip(images[lit, rows].astype(int) + 50, 0, 255)
        else:
            # every class in every split (the first n_classes examples), the rest at random
            y = np.concatenate([np.arange(min(count, n_classes)),
                                rng.integers(0, n_classes, max(count - n_classes, 0))])
            labels = rng.permutation(y).astype(np.uint8)[:, None]
            images = fake_images(rng, labels[:, 0], size, n_channels, n_classes)
        arrays[f"{split}_images"] = images[..., 0] if n_channels == 1 else images
        arrays[f"{split}_labels"] = labels
    np.savez_compressed(path, **arrays)
    return path


def md5_of(path: str | os.PathLike) -> str:
    """The file's MD5 hex digest."""
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def fake_medmnist_info(path: str | os.PathLike, *, flag: str = "dermamnist", size: int = 28,
                       n: tuple[int, int, int] = (70, 10, 20), n_channels: int = 3,
                       n_classes: int = 7, multilabel: int = 0,
                       md5: str | None = None) -> dict:
    """Metadata shaped like ``medmnist.INFO`` (``{flag: {...}}``) for a file written by
    :func:`write_fake_medmnist` with the same arguments: its real MD5 unless ``md5`` is given,
    class names ``class_0``, ``class_1``, ..."""
    suffix = "" if size == 28 else f"_{size}"
    n_labels = multilabel or n_classes
    return {flag: {
        "python_class": flag.replace("mnist", "").capitalize() + "MNIST",
        "description": "fake data for tests",
        f"url{suffix}": _URL.format(name=medmnist_file_name(flag, size)),
        f"MD5{suffix}": md5_of(path) if md5 is None else md5,
        "task": "multi-label, binary-class" if multilabel else "multi-class",
        "label": {str(k): f"class_{k}" for k in range(n_labels)},
        "n_channels": n_channels,
        "n_samples": dict(zip(("train", "val", "test"), n)),
        "license": "CC BY 4.0",
    }}


def write_image_folder(root: str | os.PathLike, classes: Sequence[str] = ("cat", "dog"),
                       per_class: int = 3, size: int | tuple[int, int] = (12, 10),
                       mode: str = "RGB", *, ext: str = ".png", seed: int = 0) -> Path:
    """Writes ``root/<class>/img_<i><ext>`` with Pillow: ``per_class`` images of each class,
    ``size`` ``(H, W)``, Pillow ``mode`` ``"L"`` or ``"RGB"``, class ``k`` of ``classes`` (in
    the order given) with the mean colour ``class_colours(len(classes), C)[k]``.

    Returns:
      ``root``.
    """
    from PIL import Image

    root = Path(root)
    n_channels = {"L": 1, "RGB": 3}[mode]
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = fake_images(rng, np.full(per_class, k), size, n_channels, len(classes))
        for i, image in enumerate(images):
            pixels = image[..., 0] if n_channels == 1 else image
            Image.fromarray(pixels).save(folder / f"img_{i}{ext}")
    return root


def write_csv(path: str | os.PathLike, *, n: int = 30, n_features: int = 3, n_classes: int = 3,
              label_column: str = "label", class_names: Sequence[str] | None = None,
              seed: int = 0, delimiter: str = ",") -> Path:
    """Writes a table with a header ``f0, f1, ..., label``: features ``N(2 * class, 0.5^2)``
    (learnable), labels written as integers or, with ``class_names``, as those strings.

    Returns:
      ``path``.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = 2.0 * y[:, None] + 0.5 * rng.standard_normal((n, n_features))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow([f"f{j}" for j in range(n_features)] + [label_column])
        for row, label in zip(x, y):
            writer.writerow([repr(float(v)) for v in row]
                            + [class_names[label] if class_names is not None else int(label)])
    return path
