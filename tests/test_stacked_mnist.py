"""Stacked MNIST: generation, loading from the shared MNIST copy, and the mode metric."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gantricks import GantricksError, stacked_mnist
from gantricks.data import load_dataset, load_stacked_mnist
from gantricks.metrics import scores
from gantricks.metrics.modes import mode_coverage, mode_statistics

from .conftest import SHARED_DATA, mnist_available


def _fake_mnist(per_digit: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank 'digits' whose pixel value encodes the label (20·d + 10), so channels are readable."""
    labels = torch.arange(10).repeat_interleave(per_digit)
    images = (20 * labels + 10).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    return images.contiguous(), labels


class _PerfectClassifier(nn.Module):
    """Reads the digit back from the pixel value of a ``_fake_mnist`` image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = (x.mean(dim=(1, 2, 3)) + 1) * 127.5
        digit = ((value - 10) / 20).round().long().clamp(0, 9)
        return nn.functional.one_hot(digit, 10).float() * 50


def test_generate_is_deterministic_and_labelled():
    images, labels = _fake_mnist()
    a, la = stacked_mnist.generate(images, labels, 2000, seed=5)
    b, lb = stacked_mnist.generate(images, labels, 2000, seed=5)
    c, _ = stacked_mnist.generate(images, labels, 2000, seed=6)
    assert a.shape == (2000, 3, 28, 28) and a.dtype == torch.uint8
    assert la.shape == (2000,) and la.dtype == torch.int64
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    digits = (a[:, :, 0, 0].long() - 10) // 20  # each channel's digit, read from its pixels
    assert torch.equal(la, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    assert int(la.min()) >= 0 and int(la.max()) < 1000
    assert len(set(la.tolist())) > 800  # 2,000 uniform draws over 1,000 modes: ~865 distinct
    # (N, H, W) digits work the same as (N, 1, H, W).
    d, ld = stacked_mnist.generate(images[:, 0], labels, 2000, seed=5)
    assert torch.equal(d, a) and torch.equal(ld, la)


def test_generate_rejects_colour_digits():
    with pytest.raises(ValueError, match="single-channel"):
        stacked_mnist.generate(torch.zeros(4, 3, 28, 28, dtype=torch.uint8), torch.zeros(4), 2, 0)


def test_mode_statistics_of_every_mode_and_of_one():
    eye = torch.eye(10, dtype=torch.float64)
    t = torch.arange(1000)
    full = mode_statistics([eye[t // 100], eye[(t // 10) % 10], eye[t % 10]])
    assert full["modes_covered"] == 1000 and full["num_samples"] == 1000
    assert full["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert full["histogram"] == [1] * 1000
    one = mode_statistics([eye[[1] * 50], eye[[2] * 50], eye[[3] * 50]])
    assert one["modes_covered"] == 1
    assert one["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-12)
    assert one["histogram"][123] == 50 and sum(one["histogram"]) == 50


def test_mode_coverage_with_a_perfect_classifier_on_a_balanced_set():
    # Every one of the 1,000 digit triples exactly once, in stacked form.
    digits, _ = _fake_mnist(per_digit=1)
    t = torch.arange(1000)
    images = torch.cat([digits[t // 100], digits[(t // 10) % 10], digits[t % 10]], dim=1)
    r = mode_coverage(_PerfectClassifier(), images, "cpu", batch_size=300)
    assert r["modes_covered"] == 1000 and r["num_samples"] == 1000
    assert r["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert r["histogram"] == [1] * 1000


def test_mode_coverage_counts_generated_modes():
    images, labels = _fake_mnist()
    x, y = stacked_mnist.generate(images, labels, 3000, seed=0)
    r = mode_coverage(_PerfectClassifier(), x, "cpu")
    assert r["histogram"] == torch.bincount(y, minlength=1000).tolist()
    assert r["modes_covered"] == len(set(y.tolist()))
    # A generator collapsed onto ten modes.
    keep = torch.isin(y, torch.arange(10) * 111)
    r = mode_coverage(_PerfectClassifier(), x[keep], "cpu")
    assert r["modes_covered"] == 10 and r["num_samples"] == int(keep.sum()) > 10
    # KL = ln 1000 - entropy >= ln 100, with equality only for ten equally frequent modes.
    expected = scores.kl_to_uniform(torch.bincount(y[keep], minlength=1000))
    assert r["kl_to_uniform"] == pytest.approx(expected, rel=1e-12)
    assert r["kl_to_uniform"] >= math.log(100) - 1e-12


def test_mode_coverage_rejects_single_channel_images():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        mode_coverage(_PerfectClassifier(), torch.zeros(2, 1, 28, 28), "cpu")


@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_load_builds_from_mnist_deterministically():
    from gantricks.data import load_dataset

    test = load_stacked_mnist(SHARED_DATA, train=False, download=False)
    assert test[0].shape == (10_000, 3, 28, 28) and test[0].dtype == torch.uint8
    assert load_stacked_mnist(str(SHARED_DATA), train=False, download=False) is test  # cached
    x, y = load_stacked_mnist(SHARED_DATA, train=True, n=500, seed=2, download=False)
    mnist = load_dataset("mnist", SHARED_DATA, train=True, download=False)
    # Rebuilding with the documented seed reproduces it, and every channel is an MNIST digit.
    x2, y2 = stacked_mnist.generate(mnist.images, mnist.labels, 500, seed=2 * 2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    data = load_dataset("stacked-mnist", SHARED_DATA, train=False, download=False)
    assert data.num_classes == 1000 and torch.equal(data.labels, test[1])


def test_missing_mnist_names_stacked_mnist_and_what_to_put_where(tmp_path):
    with pytest.raises(GantricksError, match=r"stacked-mnist is built from MNIST: .*MNIST/raw"):
        load_dataset("stacked-mnist", tmp_path, 28, train=True, download=False)
