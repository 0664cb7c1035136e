"""The shipped in-domain classifiers: pinned files, loaded without training, named in reports.

glyphs and MNIST (and so Stacked MNIST) are scored by classifiers that are package data,
written by ``benchmarks/train_classifiers.py`` and pinned by the SHA-256 in their manifest.
``PINNED`` below repeats the names and hashes on purpose: replacing a shipped classifier
must be a visible change here too (with a new version name).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch

from gantricks import GantricksError
from gantricks.metrics import classifier as clf
from gantricks.metrics.classifier import (
    DigitClassifier,
    classifier_path,
    load_classifier,
    manifest,
    predict_probs,
    save_classifier,
    shipped_datasets,
    weights_dir,
)

from .conftest import QUIET, SHARED_DATA, mnist_available

#: dataset -> (version name, first 16 hex digits of the weights file's SHA-256)
PINNED = {
    "glyphs": ("glyphs-v2", "5ee8e5320038b3d3"),
    "mnist": ("mnist-v2", "ba74405bca4a86f5"),
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh machine: an empty cache, and training any classifier is an error."""
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("a shipped classifier was trained")

    monkeypatch.setattr(clf, "train_classifier", refuse)
    return tmp_path / "cache"


def test_shipped_files_match_their_pinned_hashes():
    entries = manifest()
    assert {d: (e["name"], e["sha256"][:16]) for d, e in entries.items()} == PINNED
    assert shipped_datasets() == ("glyphs", "mnist")
    for dataset, e in entries.items():
        data = (weights_dir() / e["file"]).read_bytes()  # via importlib.resources
        assert hashlib.sha256(data).hexdigest() == e["sha256"]
        assert e["file"] == f"{e['name']}.pt" and e["bytes"] == len(data) < 1_000_000
        assert e["architecture"] == clf.ARCHITECTURE and e["dataset"] == dataset
        assert e["test_accuracy"] >= 0.99 and e["test_images"] == 10_000
        assert (e["seed"], e["epochs"], e["threads"]) == (0, clf.DEFAULT_EPOCHS, 1)
        assert e["command"].startswith("python benchmarks/train_classifiers.py ")


def test_package_data_includes_every_shipped_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gantricks.metrics"]
    package = Path(clf.__file__).parent
    included = {p.relative_to(package).as_posix() for pat in patterns for p in package.glob(pat)}
    wanted = {f"weights/{clf.MANIFEST}"} | {f"weights/{e['file']}" for e in manifest().values()}
    assert wanted <= included


@pytest.mark.parametrize("dataset", ["glyphs", "mnist"])
def test_shipped_classifiers_load_without_training_or_data(fresh, tmp_path, dataset):
    # A classifier cached on this machine (an older gantricks trained it) is not used.
    old = {"dataset": dataset, "test_accuracy": 0.5}
    save_classifier(DigitClassifier().eval(), classifier_path(dataset), old)
    model, info = load_classifier(dataset, tmp_path / "no-data", download=False)
    name, prefix = PINNED[dataset]
    assert (info["name"], info["source"], info["sha256"]) == (name, "shipped", prefix)
    assert info["test_accuracy"] == manifest()[dataset]["test_accuracy"]
    assert Path(info["path"]).name == f"{name}.pt" and not model.training
    assert load_classifier(dataset, tmp_path / "no-data", download=False)[1] == info


def test_shipped_glyph_classifier_reads_glyphs():
    from gantricks.data import load_dataset

    model, _ = load_classifier("glyphs")
    test = load_dataset("glyphs", "data", image_size=28, train=False)
    assert test.labels is not None
    probs = predict_probs(model, test.images[:1000], "cpu")
    assert float((probs.argmax(1) == test.labels[:1000]).double().mean()) >= 0.99


@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_shipped_mnist_classifier_reads_mnist():
    from gantricks.data import load_dataset

    model, _ = load_classifier("mnist")
    test = load_dataset("mnist", SHARED_DATA, image_size=28, train=False, download=False)
    assert test.labels is not None
    probs = predict_probs(model, test.images[:2000], "cpu")
    assert float((probs.argmax(1) == test.labels[:2000]).double().mean()) >= 0.98


def test_a_changed_shipped_file_is_refused(fresh, tmp_path, monkeypatch):
    copy = tmp_path / "weights"
    shutil.copytree(Path(str(weights_dir())), copy)
    monkeypatch.setattr(clf, "weights_dir", lambda: copy)
    assert load_classifier("glyphs")[1]["source"] == "shipped"  # the copy as it is: fine
    path = copy / "glyphs-v2.pt"
    data = bytearray(path.read_bytes())
    data[-200] ^= 1  # one bit
    path.write_bytes(bytes(data))
    expected = manifest()["glyphs"]["sha256"]
    with pytest.raises(GantricksError) as raised:
        load_classifier("glyphs")
    message = str(raised.value)
    assert f"glyphs classifier glyphs-v2 ({str(path)!r})" in message
    assert f"expected sha256 {expected}, found {hashlib.sha256(data).hexdigest()}" in message
    assert "git checkout -- gantricks/metrics/weights/glyphs-v2.pt" in message
    assert "new version name" in message and "\n" not in message  # one paragraph
    path.unlink()
    with pytest.raises(GantricksError, match=r"found \(no such file\)"):
        load_classifier("glyphs")
    # Without its manifest nothing counts as shipped, and nothing trains instead: an error.
    (copy / "manifest.json").unlink()
    with pytest.raises(GantricksError, match=r"manifest .* is missing .*reinstall"):
        load_classifier("mnist")


def test_stacked_mnist_evaluation_uses_the_shipped_mnist_classifier(fresh, tmp_path):
    from gantricks.metrics.evaluate import EvalSettings, Evaluator
    from gantricks.metrics.report import markdown
    from gantricks.models import build_models

    settings = EvalSettings(["classifier"], num_samples=20, batch_size=10, progress=False)
    evaluator = Evaluator(settings, "stacked-mnist", tmp_path / "no-data", 28, download=False)
    torch.manual_seed(0)
    result = evaluator.evaluate(build_models(16, 3, 28, 8, 8).generator, 16)
    assert result is not None
    info = result["networks"]["classifier"]
    assert (info["name"], info["sha256"]) == PINNED["mnist"]
    assert f"classifier mnist-v2 (shipped), test accuracy 99.53%, sha256 {PINNED['mnist'][1]}" in (
        markdown(result)
    )
    assert not fresh.exists()  # nothing trained, nothing cached


def test_eval_gives_the_same_classifier_score_on_two_fresh_machines(tiny, tmp_path):
    """`gantricks eval RUN --metrics classifier` on a glyphs run, in two processes with
    empty caches and homes: the shipped network, no training, the same scores."""
    from gantricks.run import prepare

    trainer, _ = prepare({**tiny, "steps": 4}, plugins=[*QUIET, "no:samples"])
    trainer.fit()
    results = []
    for machine in ("a", "b"):
        home = tmp_path / machine
        env = {**os.environ, "GANTRICKS_CACHE": str(home / "cache"), "HOME": str(home)}
        out = home / "eval"
        args = ["eval", str(trainer.run_dir), "--metrics", "classifier", "--device", "cpu"]
        done = subprocess.run(
            [sys.executable, "-m", "gantricks", *args, "--num-samples", "200", "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "training the" not in done.stderr and not (home / "cache").exists()
        assert "classifier glyphs-v2 (shipped), test accuracy 100.00%, sha256 " in done.stdout
        (js,) = out.glob("*.json")
        results.append(json.loads(js.read_text()))
    a, b = results
    assert a["metrics"]["classifier"] == b["metrics"]["classifier"]
    assert a["networks"]["classifier"]["name"] == "glyphs-v2"
    assert a["networks"]["classifier"]["sha256"] == PINNED["glyphs"][1]
    assert a["networks"]["classifier"] == b["networks"]["classifier"]
