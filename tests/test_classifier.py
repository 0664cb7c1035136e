"""The in-domain classifier: score formulas, prediction, training, and its on-disk cache.

The default suite never trains a full classifier (only a few dozen steps on a subset);
the two full trainings are marked slow (run with ``-m slow``). The shipped classifiers
(pinned files, never trained) are tested in ``test_shipped_classifiers.py``; the cache
tests here make every dataset unshipped (``no_shipped``) to exercise training on first use.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gantricks import GantricksError
from gantricks.data import resize_uint8
from gantricks.metrics import classifier as clf
from gantricks.metrics import scores
from gantricks.metrics.classifier import (
    CLASSIFIER_DATASETS,
    DigitClassifier,
    cache_dir,
    classifier_path,
    classifier_scores,
    load_classifier,
    predict_probs,
    save_classifier,
    train_classifier,
)

from .conftest import SHARED_DATA, mnist_available


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if gantricks shipped no classifier: every dataset trains on first use."""
    monkeypatch.setattr(clf, "manifest", dict)


def _random_images(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=gen, dtype=torch.uint8)


def _seeded_model(seed: int = 0) -> DigitClassifier:
    torch.manual_seed(seed)
    return DigitClassifier().eval()


# ---------------------------------------------------------------------- classifier_scores
def test_scores_of_uniform_one_hot_predictions():
    probs = torch.eye(10).repeat(100, 1)  # every contiguous split holds each class 10 times
    s = classifier_scores(probs, splits=10)
    assert s["classifier_score"] == pytest.approx(10.0, rel=1e-12)
    assert s["classifier_score_std"] == pytest.approx(0.0, abs=1e-12)
    assert s["histogram"] == [100] * 10
    assert s["classes_covered"] == 10
    assert s["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_scores_of_a_collapsed_generator():
    s = classifier_scores(torch.eye(10)[[3]].repeat(200, 1))
    assert s["classifier_score"] == pytest.approx(1.0, abs=1e-12)
    assert s["classes_covered"] == 1
    assert s["kl_to_uniform"] == pytest.approx(math.log(10), rel=1e-12)
    assert s["histogram"] == [0, 0, 0, 200, 0, 0, 0, 0, 0, 0]


def test_scores_half_the_classes_and_the_is_formula():
    # Confident predictions spread evenly over 5 of 10 classes: score 5, KL ln 2.
    s = classifier_scores(torch.eye(10)[torch.arange(500) % 5], splits=5)
    assert s["classifier_score"] == pytest.approx(5.0, rel=1e-12)
    assert s["classes_covered"] == 5 and s["kl_to_uniform"] == pytest.approx(math.log(2))
    # Soft predictions: the score is exactly scores.inception_score's mean and std.
    probs = torch.softmax(torch.randn(300, 10, generator=torch.Generator().manual_seed(1)), 1)
    ref = scores.inception_score(probs, splits=3)
    s = classifier_scores(probs, splits=3)
    assert (s["classifier_score"], s["classifier_score_std"]) == (ref.mean, ref.std)
    assert sum(s["histogram"]) == 300 and all(isinstance(c, int) for c in s["histogram"])


# --------------------------------------------------------------------------- the network
def test_network_shapes_and_size():
    model = _seeded_model()
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 300_000


def test_predict_probs_shape_dtype_and_batching():
    model = _seeded_model()
    x = _random_images(25)
    p = predict_probs(model, x, "cpu")
    assert p.shape == (25, 10) and p.dtype == torch.float64 and p.device.type == "cpu"
    torch.testing.assert_close(p.sum(dim=1), torch.ones(25, dtype=torch.float64))
    # Batching does not change the result (eval mode: no batch statistics).
    torch.testing.assert_close(predict_probs(model, x, "cpu", batch_size=7), p)
    assert predict_probs(model, x[:0], "cpu").shape == (0, 10)


def test_predict_probs_resizes_other_sizes_like_the_datasets():
    model = _seeded_model()
    x = _random_images(6, size=32)
    expected = predict_probs(model, resize_uint8(x, 28), "cpu")
    torch.testing.assert_close(predict_probs(model, x, "cpu"), expected)


def test_predict_probs_restores_training_mode():
    model = _seeded_model().train()
    predict_probs(model, _random_images(3), "cpu")
    assert model.training


def test_predict_probs_rejects_rgb_and_float_images():
    model = _seeded_model()
    with pytest.raises(ValueError, match="single-channel"):
        predict_probs(model, torch.zeros(2, 3, 28, 28, dtype=torch.uint8), "cpu")
    with pytest.raises(ValueError, match="uint8"):
        predict_probs(model, torch.zeros(2, 1, 28, 28), "cpu")


# ------------------------------------------------------------------------------ training
def test_short_training_is_seeded_and_learns(cache):
    kwargs = {"epochs": 2, "max_train": 2048, "max_test": 2000, "progress": False}
    state = torch.random.get_rng_state()
    a, acc_a = train_classifier("glyphs", device="cpu", seed=0, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)  # caller's RNG untouched
    b, acc_b = train_classifier("glyphs", device="cpu", seed=0, **kwargs)
    c, _ = train_classifier("glyphs", device="cpu", seed=1, **kwargs)
    assert not a.training
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    assert acc_a == acc_b
    assert not torch.equal(a.head[-1].weight, c.head[-1].weight)
    assert acc_a > 0.5  # 32 steps on 2,048 glyphs: far above the 10% of chance


def test_training_refuses_unknown_datasets_and_bad_epochs():
    with pytest.raises(GantricksError, match=r"'cifar10'.*glyphs, mnist, fashion-mnist"):
        train_classifier("cifar10")
    with pytest.raises(GantricksError, match="epochs must be at least 1, got 0"):
        train_classifier("glyphs", epochs=0)


@pytest.mark.slow
@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_mnist_classifier_reaches_99_percent():
    _, acc = train_classifier("mnist", SHARED_DATA, "cpu", download=False, progress=False)
    assert acc >= 0.99


@pytest.mark.slow
def test_glyphs_classifier_reaches_98_percent():
    _, acc = train_classifier("glyphs", device="cpu", progress=False)
    assert acc >= 0.98


# --------------------------------------------------------------------------------- cache
def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert classifier_path("mnist") == tmp_path / "c" / "classifiers" / "mnist-v1.pt"
    monkeypatch.delenv("GANTRICKS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "gantricks"


def test_saved_classifier_loads_identically(cache, no_shipped):
    model = _seeded_model(3)
    path = save_classifier(
        model, classifier_path("glyphs"), {"dataset": "glyphs", "test_accuracy": 0.987}
    )
    assert path == cache / "classifiers" / "glyphs-v1.pt"
    assert not list(path.parent.glob("*.tmp"))  # written via a temp file, renamed
    loaded, info = load_classifier("glyphs", train_if_missing=False)
    assert not loaded.training
    x = _random_images(8)
    assert torch.equal(predict_probs(loaded, x, "cpu"), predict_probs(model, x, "cpu"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert info == {
        "dataset": "glyphs",
        "name": "glyphs-local",
        "source": "trained on first use",
        "test_accuracy": 0.987,
        "sha256": digest,
        "path": str(path),
        "architecture": "DigitClassifier-v1",
    }
    assert load_classifier("glyphs", train_if_missing=False)[1] == info


def _quick_trainer(monkeypatch, calls: list[str], before=None) -> None:
    """Replace the full training by a short one that records its calls (and first runs
    ``before()``, if given)."""
    real = clf.train_classifier

    def quick(dataset, data_dir, device, **kwargs):
        calls.append(dataset)  # a short run stands in for the full 3-epoch training
        if before is not None:
            before()
        return real(
            dataset, data_dir, device, epochs=1, max_train=512, max_test=500, progress=False
        )

    monkeypatch.setattr(clf, "train_classifier", quick)


def test_load_classifier_trains_once_then_reuses_the_file(cache, no_shipped, monkeypatch, capsys):
    calls: list[str] = []
    _quick_trainer(monkeypatch, calls)
    model, info = load_classifier("glyphs")
    err = capsys.readouterr().err
    path = cache / "classifiers" / "glyphs-v1.pt"
    assert (
        f"training the glyphs classifier once (gantricks ships none for it); cached at {path}"
        in err
    )
    assert calls == ["glyphs"] and path.is_file()
    assert info["path"] == str(path) and info["architecture"] == "DigitClassifier-v1"
    assert (info["name"], info["source"]) == ("glyphs-local", "trained on first use")
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["epochs"] == clf.DEFAULT_EPOCHS
    again, info2 = load_classifier("glyphs")
    assert calls == ["glyphs"] and info2 == info  # loaded, not retrained
    x = _random_images(5)
    assert torch.equal(predict_probs(again, x, "cpu"), predict_probs(model, x, "cpu"))


def test_two_loaders_at_once_train_once(cache, no_shipped, monkeypatch, capsys):
    """A second loader that starts while the first trains (here a thread, with its own lock
    file handle, as another process has) waits for that training and loads its file."""
    calls: list[str] = []
    training, release = threading.Event(), threading.Event()

    def hold() -> None:  # the first training waits until the second loader is waiting
        training.set()
        assert release.wait(60)

    _quick_trainer(monkeypatch, calls, before=hold)
    infos: list[dict] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            infos.append(load_classifier("glyphs")[1])
        except BaseException as e:
            errors.append(e)

    first = threading.Thread(target=load)
    first.start()
    assert training.wait(60)
    second = threading.Thread(target=load)
    second.start()
    err, deadline = "", time.monotonic() + 60
    while "waiting for it" not in err and time.monotonic() < deadline:
        err += capsys.readouterr().err
        time.sleep(0.05)
    release.set()
    first.join(120)
    second.join(120)
    assert "another process is training the glyphs classifier; waiting for it" in err
    assert not errors and len(infos) == 2
    assert calls == ["glyphs"]  # exactly one training
    assert infos[0] == infos[1]  # the second loaded the first's file
    assert (cache / "classifiers" / "glyphs-v1.pt.lock").is_file()


_RACER = """
import sys, time
from pathlib import Path

import torch

from gantricks.metrics import classifier as clf

log, ready = Path(sys.argv[1]), Path(sys.argv[2])
clf.manifest = dict  # as if gantricks shipped no classifier


def fake_training(dataset, data_dir, device, **kwargs):
    with open(log, "a") as f:
        f.write(dataset + "\\n")
    time.sleep(2)  # the other process asks meanwhile
    torch.manual_seed(0)
    return clf.DigitClassifier().eval(), 0.5


clf.train_classifier = fake_training
(ready / sys.argv[3]).touch()
while len(list(ready.iterdir())) < 2:  # start together
    time.sleep(0.01)
print(clf.load_classifier("glyphs")[1]["sha256"])
"""


def test_two_processes_starting_together_train_once(cache, tmp_path):
    script, log, ready = tmp_path / "racer.py", tmp_path / "trainings.log", tmp_path / "ready"
    script.write_text(_RACER)
    ready.mkdir()
    env = {**os.environ, "GANTRICKS_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(log), str(ready), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert log.read_text() == "glyphs\n"  # one training
    assert outs[0][0] == outs[1][0]  # the same file, loaded by both
    assert sum("waiting for it" in err for _, err in outs) == 1


def test_cache_errors_name_the_problem(cache, no_shipped):
    path = classifier_path("mnist")
    with pytest.raises(GantricksError, match=r"not cached at .*mnist-v1\.pt"):
        load_classifier("mnist", train_if_missing=False)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.raises(GantricksError, match=r"mnist-v1\.pt.*corrupt.*delete that file"):
        load_classifier("mnist", train_if_missing=False)
    # A readable file holding another dataset's classifier is refused too.
    save_classifier(_seeded_model(), path, {"dataset": "glyphs", "test_accuracy": 0.5})
    with pytest.raises(GantricksError, match="holds the 'glyphs' classifier"):
        load_classifier("mnist", train_if_missing=False)
    for bad in ("cifar10", "stacked-mnist"):
        with pytest.raises(GantricksError, match=f"'{bad}'.*allowed: glyphs, mnist"):
            load_classifier(bad)
    assert CLASSIFIER_DATASETS == ("glyphs", "mnist", "fashion-mnist")
