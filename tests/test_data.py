"""Datasets and the device-resident batch sampler."""

from __future__ import annotations

import pytest
import torch

from gantricks import GantricksError, glyphs
from gantricks.data import BatchSampler, load_dataset, resize_uint8, to_float, to_uint8

from .conftest import SHARED_DATA, mnist_available


def test_glyphs_are_deterministic_labelled_and_varied():
    a, la = glyphs.generate(500, seed=3)
    b, lb = glyphs.generate(500, seed=3)
    c, _ = glyphs.generate(500, seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert a.shape == (500, 1, 28, 28) and a.dtype == torch.uint8
    assert set(la.tolist()) == set(range(10))
    # Ink covers a plausible share of the canvas, like MNIST (about 19% of pixels > 0.5).
    ink = (a > 127).float().mean().item()
    assert 0.05 < ink < 0.35
    # Same class, different jitter: two images of one digit are never identical.
    zeros = a[la == 0]
    assert not torch.equal(zeros[0], zeros[1])


def test_glyph_classes_are_distinguishable():
    """Nearest class-mean classification beats chance by far: the labels mean something."""
    x, y = glyphs.generate(3000, seed=0)
    x = x.float().flatten(1)
    means = torch.stack([x[:2000][y[:2000] == k].mean(0) for k in range(10)])
    pred = torch.cdist(x[2000:], means).argmin(1)
    assert (pred == y[2000:]).float().mean().item() > 0.5


def test_glyph_splits_differ():
    train, _ = glyphs.load(True)
    test, _ = glyphs.load(False)
    assert train.shape[0] == 60_000 and test.shape[0] == 10_000
    assert not torch.equal(train[:100], test[:100])


def test_float_uint8_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)


def test_resize_keeps_dtype_and_range():
    x, _ = glyphs.generate(10, seed=0)
    y = resize_uint8(x, 64)
    assert y.shape == (10, 1, 64, 64) and y.dtype == torch.uint8


def test_sampler_covers_each_epoch_once_and_resumes():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    s = BatchSampler(images, batch_size=3, seed=0)  # 3 batches per epoch, one image dropped
    epoch = torch.cat([s.next() for _ in range(3)])
    values = to_uint8(epoch).flatten().tolist()
    assert len(set(values)) == 9
    state = s.state_dict()
    rest = [s.next() for _ in range(5)]
    s2 = BatchSampler(images, batch_size=3, seed=99)
    s2.load_state_dict(state)
    assert all(torch.equal(a, s2.next()) for a in rest)
    assert s.epochs_done == pytest.approx(2 + 2 / 3)


def test_sampler_rejects_batch_larger_than_dataset():
    with pytest.raises(GantricksError, match="larger than the dataset"):
        BatchSampler(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), batch_size=8, seed=0)


def test_missing_dataset_names_files_and_folder(tmp_path):
    with pytest.raises(GantricksError) as err:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "(downloads are off: Dataset not found.)" in msg and "download=True" not in msg
    with pytest.raises(GantricksError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path, download=False)


def test_folder_dataset(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (40, 30), (i * 80, 0, 0)).save(tmp_path / f"{i}.png")
    data = load_dataset("folder", tmp_path, image_size=16)
    assert data.images.shape == (3, 3, 16, 16) and data.labels is None
    # A folder of grayscale images stays one channel, with the pixel values kept.
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(2):
        Image.new("L", (16, 16), 40 * (i + 1)).save(gray / f"{i}.png")
    data = load_dataset("folder", gray, image_size=16)
    assert data.images.shape == (2, 1, 16, 16)
    assert data.images[:, 0, 0, 0].tolist() == [40, 80]
    with pytest.raises(GantricksError, match="is not a folder"):
        load_dataset("folder", tmp_path / "does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GantricksError, match="no images"):
        load_dataset("folder", tmp_path / "empty")


@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_real_mnist_from_shared_folder():
    data = load_dataset("mnist", SHARED_DATA, download=False)
    assert data.images.shape == (60_000, 1, 28, 28)
    assert data.labels[:5].tolist() == [5, 0, 4, 1, 9]
    test = load_dataset("mnist", SHARED_DATA, train=False, download=False, image_size=32)
    assert test.images.shape == (10_000, 1, 32, 32)


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An MNIST idx file: magic number, big-endian dimensions, then the bytes."""
    import struct

    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def test_mnist_from_gz_files_and_a_corrupt_file_named_as_such(tmp_path):
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = bytes(range(256)) * (5 * 28 * 28 // 256) + bytes(5 * 28 * 28 % 256)
    for split in ("train", "t10k"):
        (raw / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(2051, (5, 28, 28), images))
        )
        (raw / f"{split}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx(2049, (5,), bytes([3, 1, 4, 1, 5])))
        )
    data = load_dataset("mnist", tmp_path, download=False)  # unpacked on first use
    assert data.images.shape == (5, 1, 28, 28) and data.labels.tolist() == [3, 1, 4, 1, 5]
    assert (raw / "train-images-idx3-ubyte").is_file()
    # A damaged archive is named, not a raw zlib error.
    (raw / "t10k-images-idx3-ubyte").unlink()
    packed = (raw / "t10k-images-idx3-ubyte.gz").read_bytes()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(packed[:20] + b"\xff" * 64 + packed[84:])
    with pytest.raises(GantricksError, match=r"could not unpack .*t10k-images-idx3-ubyte\.gz"):
        load_dataset("mnist", tmp_path, download=False)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(packed)
    # A file cut short is corrupt, not missing, and no download is tried in its place.
    (raw / "train-images-idx3-ubyte").write_bytes(_idx(2051, (60000, 28, 28), images))
    for download in (False, True):
        with pytest.raises(GantricksError, match="could not be read") as err:
            load_dataset("mnist", tmp_path, download=download)
        assert "incomplete or corrupt" in str(err.value) and "not found" not in str(err.value)


def test_unreadable_image_in_a_folder_is_named(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(GantricksError, match=r"cannot read image .*bad\.png"):
        load_dataset("folder", tmp_path, image_size=8)
