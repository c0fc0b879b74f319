"""Tests of jaxlearn.datasets on small fake files in the real formats (tests/fake_data.py)."""

import sys
import warnings

import jax
import numpy as np
import pytest
from fake_data import (
    class_colours,
    fake_medmnist_info,
    md5_of,
    write_csv,
    write_fake_medmnist,
    write_image_folder,
)
from PIL import Image

import jaxlearn as jl
from jaxlearn import _placement, datasets


@pytest.fixture
def no_installed_info(monkeypatch):
    """As if the medmnist package were not installed."""
    monkeypatch.setattr(datasets, "_installed_medmnist_info", lambda: None)


def _raw(path):
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


# ----------------------------------------------------------------------------------- MedMNIST

@pytest.mark.parametrize("n_channels,size", [(3, 28), (1, 28), (1, 64)])
def test_medmnist_shapes_dtypes_and_values(tmp_path, n_channels, size):
    path = write_fake_medmnist(tmp_path, size=size, n_channels=n_channels, n_classes=5)
    assert path.name == ("dermamnist.npz" if size == 28 else f"dermamnist_{size}.npz")
    info = fake_medmnist_info(path, size=size, n_channels=n_channels, n_classes=5)
    data = datasets.load_medmnist(path, info=info)
    raw = _raw(path)
    assert isinstance(data, jl.data.Dataset)
    assert data.x_train.shape == (70, size, size, n_channels)
    assert data.x_test.shape == (20, size, size, n_channels)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert data.y_train.shape == (70,) and data.y_test.shape == (20,)
    # x = pixel / 255 exactly (a float32 division), channels last; y in file order
    expected = raw["train_images"].reshape(70, size, size, n_channels).astype(np.float32) / 255
    np.testing.assert_array_equal(data.x_train, expected)
    np.testing.assert_array_equal(data.y_test, raw["test_labels"][:, 0])
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert sorted(set(data.y_train.tolist())) == list(range(5))


def test_medmnist_one_split(tmp_path):
    path = write_fake_medmnist(tmp_path)
    x, y = datasets.load_medmnist(path, split="val", info=fake_medmnist_info(path))
    raw = _raw(path)
    assert x.shape == (10, 28, 28, 3) and y.shape == (10,)
    np.testing.assert_array_equal(x, raw["val_images"].astype(np.float32) / 255)
    np.testing.assert_array_equal(y, raw["val_labels"][:, 0].astype(np.int32))


def test_fake_medmnist_is_learnable(tmp_path):
    # the other tests train on these files: the class must be readable from the mean colour
    path = write_fake_medmnist(tmp_path, n=(200, 10, 100))
    data = datasets.load_medmnist(path, info=fake_medmnist_info(path, n=(200, 10, 100)))
    means = class_colours(7, 3) / 255
    colour = data.x_test.mean(axis=(1, 2))
    nearest = np.argmin(((colour[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == data.y_test) == 1.0


def test_medmnist_checksum_accepted_and_refused(tmp_path):
    path = write_fake_medmnist(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a verified load warns about nothing
        datasets.load_medmnist(path, split="test", info=fake_medmnist_info(path))
    wrong = "0" * 32
    with pytest.raises(ValueError) as err:
        datasets.load_medmnist(path, info=fake_medmnist_info(path, md5=wrong))
    message = str(err.value)
    assert str(path) in message and wrong in message and md5_of(path) in message
    # verify=False skips the checksum
    x, _ = datasets.load_medmnist(path, split="test", verify=False,
                                  info=fake_medmnist_info(path, md5=wrong))
    assert x.shape == (20, 28, 28, 3)


def test_medmnist_checksum_of_the_size_in_the_file_name(tmp_path):
    path = write_fake_medmnist(tmp_path, size=32)
    info = fake_medmnist_info(path, size=32)
    assert "MD5_32" in info["dermamnist"] and "MD5" not in info["dermamnist"]
    datasets.load_medmnist(path, split="test", info=info)
    info["dermamnist"]["MD5_32"] = "f" * 32
    with pytest.raises(ValueError, match="f{32}"):
        datasets.load_medmnist(path, split="test", info=info)


def test_medmnist_without_metadata_warns_and_loads(tmp_path, no_installed_info):
    path = write_fake_medmnist(tmp_path)
    with pytest.warns(UserWarning, match="not verified.*pip install --no-deps medmnist"):
        x, y = datasets.load_medmnist(path, split="train")
    assert x.shape == (70, 28, 28, 3) and y.dtype == np.int32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load_medmnist(path, split="train", verify=False)


def test_medmnist_multilabel_refused_then_accepted(tmp_path):
    path = write_fake_medmnist(tmp_path, flag="chestmnist", n_channels=1, multilabel=14)
    info = fake_medmnist_info(path, flag="chestmnist", n_channels=1, multilabel=14)
    with pytest.raises(ValueError, match="multi-label, binary-class.*multilabel=True"):
        datasets.load_medmnist(path, info=info)
    x, y = datasets.load_medmnist(path, split="train", info=info, multilabel=True)
    assert x.shape == (70, 28, 28, 1) and y.shape == (70, 14) and y.dtype == np.int32
    np.testing.assert_array_equal(y, _raw(path)["train_labels"])
    assert 0 < y.mean() < 1


def test_medmnist_multilabel_without_metadata_and_on_a_single_label_task(tmp_path,
                                                                          no_installed_info):
    multi = write_fake_medmnist(tmp_path, flag="chestmnist", n_channels=1, multilabel=3)
    with pytest.raises(ValueError, match="3 labels per image.*multilabel=True"):
        datasets.load_medmnist(multi, verify=False)
    _, y = datasets.load_medmnist(multi, split="test", verify=False, multilabel=True)
    assert y.shape == (20, 3)
    single = write_fake_medmnist(tmp_path)
    with pytest.raises(ValueError, match="`multilabel` is True but 'dermamnist' is a "
                                         "'multi-class' task"):
        datasets.load_medmnist(single, info=fake_medmnist_info(single), multilabel=True)


def test_medmnist_missing_file_says_how_to_get_it(tmp_path, no_installed_info):
    path = tmp_path / "dermamnist_64.npz"
    info = fake_medmnist_info(path.parent / "absent.npz", size=64, md5="0" * 32)
    with pytest.raises(FileNotFoundError) as err:
        datasets.load_medmnist(path, info=info)
    assert f"wget -O {path} '{info['dermamnist']['url_64']}'" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        datasets.load_medmnist(path)
    message = str(err.value)
    assert "pip install medmnist" in message and "size=64" in message
    assert f"root='{tmp_path}'" in message and "INFO['dermamnist']" in message


def _rewrite(path, **changes):
    arrays = _raw(path)
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.parametrize("change,fragment", [
    (lambda a: {"test_labels": None}, "no array 'test_labels'"),
    (lambda a: {"train_images": a["train_images"].astype(np.float32)},
     "`train_images` must be uint8 pixels, got dtype float32"),
    (lambda a: {"train_labels": a["train_labels"].astype(np.float32)},
     "`train_labels` must hold integer labels"),
    (lambda a: {"test_labels": np.full_like(a["test_labels"], 7)},
     "`test_labels` holds 7; expected labels in \\[0, 7\\)"),
    (lambda a: {"train_labels": a["train_labels"][:60]}, "must have shape \\[70, 1\\]"),
    (lambda a: {"train_images": a["train_images"][..., 0]},
     "must have shape \\[n, H, W, 3\\] \\(colour\\) for 'dermamnist' \\(n_channels=3\\)"),
])
def test_medmnist_bad_contents_are_named(tmp_path, change, fragment):
    path = write_fake_medmnist(tmp_path)
    _rewrite(path, **change(_raw(path)))
    with pytest.raises(ValueError, match=fragment) as err:
        datasets.load_medmnist(path, info=fake_medmnist_info(path))
    assert str(path) in str(err.value)


def test_medmnist_flag_from_file_name_or_argument(tmp_path):
    path = write_fake_medmnist(tmp_path / "my_copy.npz")
    info = fake_medmnist_info(path)
    with pytest.raises(ValueError, match="'my_copy' \\(from the file name; pass `flag=`"):
        datasets.load_medmnist(path, info=info)
    x, _ = datasets.load_medmnist(path, split="test", flag="dermamnist", info=info)
    assert x.shape == (20, 28, 28, 3)


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"split": "validation"}, ValueError, "`split` must be one of"),
    ({"flag": 3}, TypeError, "`flag` must be a str"),
    ({"info": [1]}, TypeError, "`info` must be a mapping"),
    ({"verify": 1}, TypeError, "`verify` must be a bool"),
])
def test_medmnist_bad_arguments(tmp_path, kwargs, error, fragment):
    path = write_fake_medmnist(tmp_path)
    with pytest.raises(error, match=fragment):
        datasets.load_medmnist(path, **kwargs)


def test_medmnist_labels(tmp_path, no_installed_info):
    info = fake_medmnist_info(tmp_path / "x.npz", n_classes=3, md5="0" * 32)
    assert datasets.medmnist_labels("dermamnist", info=info) == ("class_0", "class_1", "class_2")
    with pytest.raises(ValueError, match="known flags: \\['dermamnist'\\]"):
        datasets.medmnist_labels("pathmnist", info=info)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps medmnist"):
        datasets.medmnist_labels("dermamnist")


def test_medmnist_real_metadata_without_importing_the_package():
    if datasets._installed_medmnist_info() is None:
        pytest.skip("medmnist is not installed")
    assert "medmnist" not in sys.modules   # read from info.py, not imported (torch, a banner)
    names = datasets.medmnist_labels("dermamnist")
    assert len(names) == 7 and names[5] == "melanocytic nevi"
    assert len(datasets.medmnist_labels("chestmnist")) == 14


# ------------------------------------------------------------------------------ image folders

def test_image_folder_shapes_labels_and_values(tmp_path):
    root = write_image_folder(tmp_path / "imgs", ("dog", "cat", "bird"), per_class=4,
                              size=(12, 10), mode="RGB")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / ".ipynb_checkpoints").mkdir()
    x, y, names = datasets.load_image_folder(root, image_size=(12, 10))
    assert names == ("bird", "cat", "dog")
    assert x.shape == (12, 12, 10, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # no resize at the file's size: exactly the PNG's pixels / 255, files in sorted order
    pixels = np.asarray(Image.open(root / "cat" / "img_2.png"), np.float32) / 255
    np.testing.assert_array_equal(x[6], pixels)
    # the class signal: "dog" (written first) has the mean colour of class 0
    np.testing.assert_allclose(x[y == 2].mean(axis=(0, 1, 2)), class_colours(3, 3)[0] / 255,
                               atol=0.02)


def test_image_folder_resizes_bilinear(tmp_path):
    root = write_image_folder(tmp_path, ("a", "b"), per_class=2, size=(16, 16), mode="L")
    x, _, _ = datasets.load_image_folder(root, image_size=(8, 4))
    assert x.shape == (4, 8, 4, 1)
    # Pillow's bilinear filter averages when shrinking: the image mean is kept to ~1 grey level
    full, _, _ = datasets.load_image_folder(root, image_size=(16, 16))
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), full.mean(axis=(1, 2, 3)), atol=2 / 255)
    assert x.std() > 0


@pytest.mark.parametrize("content", [b"this is not a png", "truncated"])
def test_image_folder_corrupt_file_is_named(tmp_path, content):
    root = write_image_folder(tmp_path, ("a", "b"), per_class=2)
    bad = root / "b" / "img_1.png"
    if content == "truncated":
        content = bad.read_bytes()[:60]
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="cannot read the image") as err:
        datasets.load_image_folder(root, image_size=(12, 10))
    assert str(bad) in str(err.value)


def test_image_folder_mixed_channels(tmp_path):
    write_image_folder(tmp_path, ("a",), per_class=2, mode="L")
    write_image_folder(tmp_path, ("b",), per_class=2, mode="RGB")
    with pytest.raises(ValueError) as err:
        datasets.load_image_folder(tmp_path, image_size=(12, 10))
    message = str(err.value)
    assert f"{tmp_path / 'a' / 'img_0.png'} has 1" in message
    assert f"{tmp_path / 'b' / 'img_0.png'} has 3" in message
    rgb, _, _ = datasets.load_image_folder(tmp_path, image_size=(12, 10), channels=3)
    gray, _, _ = datasets.load_image_folder(tmp_path, image_size=(12, 10), channels=1)
    assert rgb.shape == (4, 12, 10, 3) and gray.shape == (4, 12, 10, 1)
    # a grayscale image converted to RGB has three equal channels
    np.testing.assert_array_equal(rgb[0, ..., 0], rgb[0, ..., 2])


def test_image_folder_modes(tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    deep = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")
    x, _, _ = datasets.load_image_folder(tmp_path, image_size=(12, 10))
    np.testing.assert_array_equal(x[0, ..., 0], deep.astype(np.float32) / 65535)  # not clipped
    Image.fromarray(np.zeros((12, 10, 4), np.uint8)).save(folder / "rgba.png")
    with pytest.raises(ValueError, match="rgba.png has Pillow mode 'RGBA'.*channels=3"):
        datasets.load_image_folder(tmp_path, image_size=(12, 10))
    x, _, _ = datasets.load_image_folder(tmp_path, image_size=(12, 10), channels=3)
    assert x.shape == (2, 12, 10, 3)


def test_image_folder_empty_class_and_no_classes(tmp_path):
    root = write_image_folder(tmp_path / "r", ("a", "b"), per_class=1)
    (root / "c").mkdir()
    with pytest.raises(ValueError, match=f"class folder {root / 'c'} holds no image"):
        datasets.load_image_folder(root, image_size=(4, 4))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(flat / "x.png")
    with pytest.raises(ValueError, match="no class sub-folders.*1 image file"):
        datasets.load_image_folder(flat, image_size=(4, 4))
    with pytest.raises(FileNotFoundError, match="not found"):
        datasets.load_image_folder(tmp_path / "absent", image_size=(4, 4))


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"image_size": 28}, ValueError, "`image_size` must be \\(H, W\\)"),
    ({"image_size": (28, 0)}, ValueError, "`image_size` must be \\(H, W\\)"),
    ({"image_size": (4, 4), "channels": 2}, ValueError, "`channels` must be one of"),
    ({"image_size": (4, 4), "channels": True}, TypeError, "`channels` must be an int"),
    ({"image_size": (4, 4), "extensions": ".png"}, TypeError, "`extensions` must be"),
])
def test_image_folder_bad_arguments(tmp_path, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        datasets.load_image_folder(tmp_path, **kwargs)


# ------------------------------------------------------------------------------------ arrays

def test_npz_and_npy_round_trip(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    y = np.array([[0], [1], [2], [0], [1], [2]], np.int64)
    np.savez(tmp_path / "d.npz", images=x, targets=y)
    xs, ys = datasets.load_npz(tmp_path / "d.npz", x_key="images", y_key="targets")
    assert xs.dtype == np.float32 and ys.dtype == np.int32 and ys.shape == (6,)
    np.testing.assert_array_equal(xs, x.astype(np.float32))   # converted, not rescaled
    np.testing.assert_array_equal(ys, y[:, 0])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y[:, 0])
    xn, yn = datasets.load_npy(tmp_path / "x.npy", tmp_path / "y.npy")
    assert type(xn) is np.ndarray    # decoded, not a memory map
    np.testing.assert_array_equal(xn, xs)
    np.testing.assert_array_equal(yn, ys)


@pytest.mark.parametrize("x,y,fragment", [
    (np.ones((4, 2)), np.array([0.0, 1, 0, 1]), "must hold integer class labels, got dtype "
                                                "float64; convert them"),
    (np.array([[1.0, np.nan], [0, 0], [0, 0]]), np.zeros(3, int), "1 NaN or inf value.*index "
                                                                   "\\(0, 1\\)"),
    (np.ones((4, 2)), np.zeros(5, int), "has 4 samples but .* has 5"),
    (np.ones(4), np.zeros(4, int), "at least 2 dimensions .* got \\(4,\\)"),
    (np.ones((3, 2)), np.array([0, -1, 0]), "the label -1"),
    (np.ones((3, 2)), np.zeros((3, 2), int), "must have shape \\[n\\] or \\[n, 1\\]"),
    (np.array([[1e39], [0.0]]), np.zeros(2, int), "beyond float32's range"),
    (np.array([["a"], ["b"]]), np.zeros(2, int), "must be numeric"),
])
def test_npz_and_npy_refuse_bad_arrays(tmp_path, x, y, fragment):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(ValueError, match=fragment) as err:
        datasets.load_npz(tmp_path / "d.npz")
    assert "d.npz" in str(err.value)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    with pytest.raises(ValueError, match=fragment):
        datasets.load_npy(tmp_path / "x.npy", tmp_path / "y.npy")


def test_npz_and_npy_file_errors(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((2, 2)), labels=np.zeros(2, int))
    with pytest.raises(ValueError, match="no array 'y' \\(y\\); it holds \\['labels', 'x'\\]"):
        datasets.load_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="is an .npz archive.*load_npz"):
        datasets.load_npy(tmp_path / "d.npz", tmp_path / "d.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None]), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros(2, int))
    with pytest.raises(ValueError, match="objects.npy is not a numeric .npy array"):
        datasets.load_npy(tmp_path / "objects.npy", tmp_path / "y.npy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz"):
        datasets.load_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="absent.npz not found"):
        datasets.load_npz(tmp_path / "absent.npz")
    with pytest.raises(TypeError, match="`path` must be a path"):
        datasets.load_npz(3)


# --------------------------------------------------------------------------------------- CSV

def test_csv_integer_labels(tmp_path):
    path = write_csv(tmp_path / "t.csv", n=12, n_features=3, n_classes=3)
    x, y, names = datasets.load_csv(path, label_column="label")
    assert names == ("f0", "f1", "f2") and x.shape == (12, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and y.tolist() == [0, 1, 2] * 4
    reference = np.loadtxt(path, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(x, reference[:, :3].astype(np.float32))
    x2, _, names2 = datasets.load_csv(path, label_column="label", feature_columns=["f2", "f0"])
    assert names2 == ("f2", "f0")
    np.testing.assert_array_equal(x2, x[:, [2, 0]])


def test_csv_string_labels_need_their_order(tmp_path):
    path = write_csv(tmp_path / "t.csv", n=6, n_classes=2, class_names=("benign", "malignant"),
                     delimiter=";")
    with pytest.raises(ValueError, match="class_names=\\('benign', 'malignant'\\)"):
        datasets.load_csv(path, label_column="label", delimiter=";")
    _, y, _ = datasets.load_csv(path, label_column="label", delimiter=";",
                                class_names=("malignant", "benign"))
    assert y.tolist() == [1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="line 3, column 'label' holds 'malignant', which is not"):
        datasets.load_csv(path, label_column="label", delimiter=";", class_names=("benign",))


@pytest.mark.parametrize("cell,fragment", [
    ("", "line 4, column 'b' is empty \\(a missing value\\)"),
    ("abc", "line 4, column 'b' holds 'abc'"),
    ("nan", "line 4, column 'b' holds 'nan'"),
    ("1e40", "line 4, column 'b' holds '1e40'.*float32's range"),
])
def test_csv_bad_cell_names_line_and_column(tmp_path, cell, fragment):
    path = tmp_path / "t.csv"
    path.write_text(f"a,b,y\n1,2,0\n\n3,{cell},1\n")   # line 3 is blank
    with pytest.raises(ValueError, match=fragment) as err:
        datasets.load_csv(path, label_column="y")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text,kwargs,fragment", [
    ("a,b\n1,2\n", {"label_column": "y"}, "no column 'y' \\(`label_column`\\); columns found: "
                                          "\\['a', 'b'\\]"),
    ("a,y\n1,2\n", {"label_column": "y", "feature_columns": ["c"]}, "no column\\(s\\) \\['c'\\]"),
    ("a,y\n1,2,3\n", {"label_column": "y"}, "line 2: 3 fields but the header has 2"),
    ("a,y\n", {"label_column": "y"}, "no data rows"),
    ("a,y\n1.0,-1\n", {"label_column": "y"}, "line 2, column 'y' holds the label -1"),
    ("a,a,y\n1,2,0\n", {"label_column": "y"}, "repeats the column name\\(s\\) \\['a'\\]"),
])
def test_csv_structure_errors(tmp_path, text, kwargs, fragment):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        datasets.load_csv(path, **kwargs)


def test_csv_byte_order_mark_and_quotes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeff"size, cm",y\n"1.5",1\n'.encode())
    x, y, names = datasets.load_csv(path, label_column="y")
    assert names == ("size, cm",) and x.tolist() == [[1.5]] and y.tolist() == [1]


# ------------------------------------------------------------------------------------ memory

def test_check_fits_refuses_with_sizes():
    datasets.check_fits(10 * 2**20, what="x", budget=11 * 2**20)
    with pytest.raises(ValueError) as err:
        datasets.check_fits(3 * 2**30, what="x of dermamnist_224.npz", budget=2**30)
    message = str(err.value)
    assert "x of dermamnist_224.npz needs 3.00 GiB but only 1.00 GiB is available" in message
    assert "image_size" in message and "batches" in message


def test_memory_budget_is_the_hosts_on_cpu():
    budget = datasets.memory_budget(jax.devices("cpu")[0])
    total = _placement.available_host_bytes()
    assert isinstance(budget, int) and budget > 0
    # both read MemAvailable a moment apart: equal up to what other processes did meanwhile
    assert abs(budget - total) < 0.2 * total
    with pytest.raises(TypeError, match="`device` must be a jax.Device"):
        datasets.memory_budget("cpu")


def test_loaders_check_memory_before_decoding(tmp_path, monkeypatch):
    path = write_fake_medmnist(tmp_path)
    root = write_image_folder(tmp_path / "imgs", ("a", "b"), per_class=2)
    monkeypatch.setattr(_placement, "available_host_bytes", lambda: 1000)

    def decoding(*args, **kwargs):
        raise AssertionError("decoded before the memory check")

    monkeypatch.setattr(np, "load", decoding)
    # train + test: 4 bytes per float32 pixel, 1 per uint8 pixel of train (the larger split) while
    # it is converted, 4 per label: 4 * 90 * 2352 + 70 * 2352 + 4 * 90 = 1011720 B = 988.01 KiB
    with pytest.raises(ValueError, match="needs 988.01 KiB but only 1000 B is available"):
        datasets.load_medmnist(path, info=fake_medmnist_info(path))
    with pytest.raises(ValueError, match="the images of .* needs 12.00 KiB"):   # 4*16*16*3*4 B
        datasets.load_image_folder(root, image_size=(16, 16))


# ----------------------------------------------------------------------------------- batches

def test_batches_every_example_once_per_epoch():
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(10, dtype=np.int32)
    got = list(datasets.batches(jax.random.key(0), x, y, 3, epochs=2, drop_last=False))
    assert [len(yb) for _, yb in got] == [3, 3, 3, 1] * 2
    for epoch in (got[:4], got[4:]):
        seen = np.concatenate([np.asarray(yb) for _, yb in epoch])
        assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in got:   # x and y stay paired
        assert isinstance(xb, jax.Array) and xb.dtype == np.float32 and yb.dtype == np.int32
        np.testing.assert_array_equal(np.asarray(xb)[:, 0], np.asarray(yb))
    epoch_orders = [np.concatenate([np.asarray(yb) for _, yb in got[i:i + 4]]) for i in (0, 4)]
    assert not np.array_equal(epoch_orders[0], epoch_orders[1])   # reshuffled each epoch

    dropped = list(datasets.batches(jax.random.key(0), x, y, 3))
    assert [len(yb) for _, yb in dropped] == [3, 3, 3]
    assert len({int(v) for _, yb in dropped for v in np.asarray(yb)}) == 9


def test_batches_deterministic_and_keep_dtypes(tmp_path):
    x = np.arange(40, dtype=np.uint8).reshape(20, 2)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    y = np.arange(20, dtype=np.int32)

    def order(key, data):
        return [np.asarray(yb).tolist() for _, yb in datasets.batches(key, data, y, 4)]

    assert order(jax.random.key(1), x) == order(jax.random.key(1), mapped)
    assert order(jax.random.key(1), x) != order(jax.random.key(2), x)
    xb, _ = next(datasets.batches(jax.random.key(1), mapped, y, 4))
    assert xb.dtype == np.uint8 and xb.shape == (4, 2)   # no silent cast


@pytest.mark.parametrize("args,kwargs,error,fragment", [
    ((np.ones((4, 2)), np.zeros(4, np.int32), 2), {}, TypeError, "`x` has dtype float64"),
    ((np.ones((4, 2), np.float32), np.zeros(5, np.int32), 2), {}, ValueError, "has 4 samples"),
    ((np.ones((4, 2), np.float32), np.zeros(4, np.int32), 5), {}, ValueError,
     "no batch would be made"),
    ((np.ones((4, 2), np.float32), np.zeros(4, np.int32), 2), {"epochs": 0}, ValueError,
     "`epochs` must be > 0"),
    (([1.0, 2.0], np.zeros(2, np.int32), 1), {}, TypeError, "`x` must be a numpy array"),
])
def test_batches_refuse_at_the_call(args, kwargs, error, fragment):
    # raised when called, not at the first next()
    with pytest.raises(error, match=fragment):
        datasets.batches(jax.random.key(0), *args, **kwargs)
