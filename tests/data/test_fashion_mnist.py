"""Fashion-MNIST loader: crafted idx files (good and bad) in tmp_path, the not-found message, and the
real data set from the Debian package (the `fashion_mnist` fixture)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from attn_models.data import fashion_mnist as fm
from attn_models.data import load_fashion_mnist

N_TEST = 10000


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test here may see the real data unless it asks for it, nor reuse another test's cached arrays."""
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian-package")
    fm._load_cached.cache_clear()
    yield
    fm._load_cached.cache_clear()


def write_idx(path: Path, magic: int, dims: tuple[int, ...], body: bytes | None = None, gz: bool = True) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    if body is None:
        body = bytes(int(np.prod(dims)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(header + body)
    else:
        path.write_bytes(header + body)


def write_test_split(folder: Path, n: int = N_TEST, labels: np.ndarray | None = None, gz: bool = True,
                     image_magic: int = fm.IMAGE_MAGIC, label_magic: int = fm.LABEL_MAGIC) -> np.ndarray:
    """A synthetic test split: image i is filled with i % 256; returns the labels written."""
    if labels is None:
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
    images = np.repeat((np.arange(n) % 256).astype(np.uint8), 28 * 28)
    img_name, lbl_name, _ = fm.FILES["test"]
    if not gz:
        img_name, lbl_name = img_name.removesuffix(".gz"), lbl_name.removesuffix(".gz")
    write_idx(folder / img_name, image_magic, (n, 28, 28), images.tobytes(), gz)
    write_idx(folder / lbl_name, label_magic, (len(labels),), labels.tobytes(), gz)
    return labels


def test_reads_a_valid_split_from_root(tmp_path):
    labels = write_test_split(tmp_path / "fm")
    x, y = load_fashion_mnist("test", root=tmp_path / "fm", download=False)
    assert x.shape == (N_TEST, 28, 28) and x.dtype == np.uint8
    assert y.shape == (N_TEST,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    assert x[3].min() == x[3].max() == 3 and x[300].max() == 300 % 256  # images stay in file order


def test_env_var_torchvision_layout_and_plain_files(tmp_path, monkeypatch):
    write_test_split(tmp_path / "tv" / "FashionMNIST" / "raw")  # where torchvision downloads to
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "tv"))
    assert load_fashion_mnist("test", download=False)[0].shape == (N_TEST, 28, 28)
    fm._load_cached.cache_clear()
    write_test_split(tmp_path / "plain", gz=False)  # gunzipped copies
    assert load_fashion_mnist("test", root=tmp_path / "plain", download=False)[1].shape == (N_TEST,)


def test_bad_magic_numbers_name_the_file(tmp_path):
    write_test_split(tmp_path, image_magic=2049)  # a labels magic in the images file
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: bad idx magic number 2049, expected 2051"):
        load_fashion_mnist("test", root=tmp_path, download=False)
    fm._load_cached.cache_clear()
    write_test_split(tmp_path, label_magic=0x00000803)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: bad idx magic number 2051, expected 2049"):
        load_fashion_mnist("test", root=tmp_path, download=False)


def test_truncated_files_are_refused(tmp_path):
    img, lbl, _ = fm.FILES["test"]
    write_test_split(tmp_path)
    write_idx(tmp_path / img, fm.IMAGE_MAGIC, (N_TEST, 28, 28), bytes(N_TEST * 784 - 100))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: .* bytes of data for shape .*truncated"):
        load_fashion_mnist("test", root=tmp_path, download=False)
    fm._load_cached.cache_clear()
    (tmp_path / img).write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(ValueError, match="too short to be an idx file"):
        load_fashion_mnist("test", root=tmp_path, download=False)


def test_wrong_shapes_and_labels_are_refused(tmp_path):
    img, lbl, _ = fm.FILES["test"]
    write_idx(tmp_path / img, fm.IMAGE_MAGIC, (10, 28, 28))  # consistent file, but not Fashion-MNIST's size
    write_idx(tmp_path / lbl, fm.LABEL_MAGIC, (10,))
    with pytest.raises(ValueError, match=r"shapes \(10, 28, 28\), \(10,\); expected \(10000, 28, 28\)"):
        load_fashion_mnist("test", root=tmp_path, download=False)
    fm._load_cached.cache_clear()
    write_idx(tmp_path / img, fm.IMAGE_MAGIC, (N_TEST, 28, 27))
    write_idx(tmp_path / lbl, fm.LABEL_MAGIC, (N_TEST,))
    with pytest.raises(ValueError, match=r"shapes \(10000, 28, 27\)"):
        load_fashion_mnist("test", root=tmp_path, download=False)
    fm._load_cached.cache_clear()
    bad = np.zeros(N_TEST, np.uint8)
    bad[5] = 10
    write_test_split(tmp_path, labels=bad)
    with pytest.raises(ValueError, match="labels .* go past class 9"):
        load_fashion_mnist("test", root=tmp_path, download=False)


def test_nothing_found_names_the_package_the_flag_and_the_env_var(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist("train", root=tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--data-dir" in msg and "$FASHION_MNIST_DIR" in msg
    assert str(tmp_path / "empty") in msg  # where it looked


def test_failed_download_falls_back_to_the_same_message(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(FileNotFoundError, match=r"(?s)download failed: Error downloading.*dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path / "empty", download=True)


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_fashion_mnist("valid")


def test_real_fashion_mnist(fashion_mnist):
    train_x, train_y, test_x, test_y = fashion_mnist
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == test_x.dtype == np.uint8 and train_y.dtype == test_y.dtype == np.int64
    # The published set is balanced: 6000 train and 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(train_y, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(test_y, minlength=10), np.full(10, 1000))
    assert train_x.min() == 0 and train_x.max() == 255
    # Trousers (1) are tall and narrow, sneakers (7) flat and wide: images and labels are paired.
    def width_over_height(cls: int) -> float:
        ink = train_x[train_y == cls][:500] > 30  # (n, 28, 28)
        width = ink.any(axis=1).sum(axis=1).mean()  # columns with ink
        height = ink.any(axis=2).sum(axis=1).mean()  # rows with ink
        return float(width / height)

    assert width_over_height(1) < 0.7 < 1.5 < width_over_height(7)
    assert len(fm.CLASS_NAMES) == 10 and fm.CLASS_NAMES[1] == "trousers" and fm.CLASS_NAMES[7] == "sneaker"
