"""The in-domain FID (``classifier_fid``): the Fréchet distance of the in-domain classifier's
penultimate features, its formula, its reference statistics and its place in eval and bench."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from gantricks import GantricksError
from gantricks.metrics import registry, scores
from gantricks.metrics.digit_classifier import (
    FEATURE_DIM,
    DigitClassifier,
    penultimate,
    predict,
    predict_probs,
)
from gantricks.metrics.evaluate import EvalSettings, Evaluator

from .conftest import QUIET


def _evaluator(reference: torch.Tensor) -> SimpleNamespace:
    mu, sigma = scores.feature_statistics(reference)
    ref = {"mu": mu, "sigma": sigma, "num_images": reference.shape[0]}
    return SimpleNamespace(
        classifier_reference_statistics=lambda: ref,
        classifier_info={"name": "test-net", "sha256": "abc"},
    )


def test_identical_features_give_zero_and_a_shift_gives_its_squared_norm():
    torch.manual_seed(0)
    feats = torch.randn(2000, 8) @ torch.randn(8, 8)
    compute = registry.METRICS["classifier_fid"].compute
    same = compute({"classifier_features": feats}, _evaluator(feats))
    assert same["value"] == pytest.approx(0.0, abs=1e-6)
    # Shifting every feature by δ moves the mean by δ and leaves the covariance: FID = ‖δ‖².
    delta = torch.tensor([1.0, -2.0, 0.5, 0.0, 0.0, 3.0, 0.0, 1.0])
    shifted = compute({"classifier_features": feats + delta}, _evaluator(feats))
    assert shifted["value"] == pytest.approx(float((delta**2).sum()), rel=1e-6)
    assert shifted["reference_images"] == 2000 and shifted["feature_dim"] == 8
    assert shifted["classifier"] == "test-net" and shifted["classifier_sha256"] == "abc"
    # Scaling the features by s (centred): trace term (1 − s)² tr Σ.
    centred = feats - feats.mean(0)
    scaled = compute({"classifier_features": 2 * centred}, _evaluator(centred))
    sigma = scores.feature_statistics(centred)[1]
    assert scaled["value"] == pytest.approx(float(torch.trace(sigma)), rel=1e-6)


def test_its_direction_and_name_keep_it_apart_from_the_inception_fid():
    m = registry.METRICS["classifier_fid"]
    assert m.network == "classifier" and m.headline("mnist") == ("classifier_fid", False)
    assert registry.METRICS["fid"].headline("mnist") == ("fid", False)
    entry = {"value": 3.5, "reference_images": 10}
    assert m.numbers(entry) == {"classifier_fid": 3.5}  # never the key "fid"


def test_penultimate_features_and_probabilities_in_one_pass():
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    probs, feats = predict(net, images, "cpu", batch_size=3, features=True)
    assert feats is not None and feats.shape == (7, FEATURE_DIM) and feats.dtype == torch.float64
    torch.testing.assert_close(probs, predict_probs(net, images, "cpu"))
    with torch.no_grad():
        x = images.float() / 127.5 - 1
        torch.testing.assert_close(feats, penultimate(net, x).double())
    assert (feats >= 0).all()  # after the layer's ReLU
    assert predict(net, images, "cpu")[1] is None


def test_stacked_mnist_and_datasets_without_a_classifier_are_refused(tmp_path):
    with pytest.raises(GantricksError, match="classifier_fid is not defined for stacked-mnist"):
        Evaluator(EvalSettings(metrics=["classifier_fid"]), "stacked-mnist", tmp_path, 28)
    with pytest.raises(GantricksError, match="classifier_fid metric exists for"):
        Evaluator(EvalSettings(metrics=["classifier_fid"]), "cifar10", tmp_path, 32)


def test_gantricks_eval_reports_the_in_domain_fid(tmp_path, capsys):
    """`gantricks eval --metrics classifier,classifier_fid` on a glyphs run: the value is
    the Fréchet distance of the samples' penultimate features to the training images', the
    reference statistics are cached with the classifier's hash in the name, and the report
    names the classifier and the reference count."""
    from gantricks.cli import main
    from gantricks.data import load_dataset
    from gantricks.metrics.classifier import load_classifier
    from gantricks.run import prepare

    data = tmp_path / "data"
    opts = {
        "out_dir": str(tmp_path / "runs"),
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "batch_size": 16,
        "steps": 2,
        "device": "cpu",
        "data_dir": str(data),
    }
    t, _ = prepare(opts, plugins=QUIET)
    t.fit()
    args = ["eval", str(t.run_dir), "--metrics", "classifier,classifier_fid"]
    args += ["--num-samples", "40", "--splits", "2", "--batch-size", "20"]
    args += ["--reference-samples", "50", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "classifier FID (in-domain, not Inception)" in printed
    result = json.loads((t.run_dir / "eval" / "step_0000002.json").read_text())
    cf = result["metrics"]["classifier_fid"]
    net, info = load_classifier("glyphs", data)
    assert cf["classifier"] == info["name"] and cf["classifier_sha256"] == info["sha256"]
    assert cf["reference_images"] == 50 and cf["num_samples"] == 40 and cf["feature_dim"] == 128
    # The same number from the parts: samples as the evaluator draws them, 50 training images.
    from gantricks.metrics.evaluate import sample_batches

    samples = torch.cat(
        [b for _, b in sample_batches(t.sampling_generator, 16, 40, 20, 0, torch.device("cpu"))]
    )
    real = load_dataset("glyphs", data, 28, train=True).images[:50]
    f_fake = predict(net, samples, "cpu", features=True)[1]
    f_real = predict(net, real, "cpu", features=True)[1]
    expected = scores.frechet_distance(
        *scores.feature_statistics(f_fake), *scores.feature_statistics(f_real)
    )
    assert cf["value"] == pytest.approx(expected, rel=1e-6) and math.isfinite(cf["value"])
    name = f"glyphs-28px-n50-classifier-*{info['sha256']}.pt"
    cached = list((data / ".gantricks-stats").glob(name))
    assert len(cached) == 1
    # The classifier scores are unchanged by computing the features in the same pass.
    alone = ["eval", str(t.run_dir), "--metrics", "classifier", "--num-samples", "40"]
    alone += ["--splits", "2", "--batch-size", "20", "--device", "cpu"]
    alone += ["--out", str(tmp_path / "o")]
    assert main(alone) == 0
    other = json.loads((tmp_path / "o" / "step_0000002.json").read_text())
    assert other["metrics"]["classifier"] == result["metrics"]["classifier"]
