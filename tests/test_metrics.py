"""Score formulas against known cases and torch-fidelity; the Inception wrapper offline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from gantricks import GantricksError
from gantricks.metrics import scores


# ------------------------------------------------------------------ Inception Score
def test_is_identical_predictions_is_one():
    p = torch.tensor([0.7, 0.2, 0.1]).repeat(50, 1)
    r = scores.inception_score(p, splits=10)
    assert r.mean == pytest.approx(1.0, abs=1e-12) and r.std == pytest.approx(0.0, abs=1e-12)


def test_is_uniform_one_hot_is_k():
    for k in (2, 10, 1000):
        p = torch.eye(k).repeat(10, 1)  # each split holds every class once
        assert scores.inception_score(p, splits=10).mean == pytest.approx(k, rel=1e-9)


def test_is_hand_case():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # p(y) = (0.75, 0.25); KL_1 = ln(4/3), KL_2 = 0.5 ln(2/3) + 0.5 ln 2 = 0.5 ln(4/3)
    assert scores.inception_score(p, splits=1).mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)


def test_is_splits_are_contiguous():
    p = torch.cat([torch.eye(2)[[0]].repeat(5, 1), torch.eye(2)[[1]].repeat(5, 1)])
    # Each contiguous half holds one class only: IS 1 per split (shuffling would give ~2).
    r = scores.inception_score(p, splits=2)
    assert r.splits == pytest.approx([1.0, 1.0])


def test_is_equals_torch_fidelity_on_random_logits():
    from torch_fidelity.metric_isc import isc_features_to_metric

    torch.manual_seed(0)
    logits = torch.randn(1000, 1008) * 3
    ours = scores.inception_score(logits, splits=10, logits=True)
    ref = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert ours.mean == pytest.approx(ref["inception_score_mean"], abs=1e-6)
    assert ours.std == pytest.approx(ref["inception_score_std"], abs=1e-6)


# ------------------------------------------------------- histogram-based classifier scores
def test_histogram_coverage_and_kl():
    counts = torch.tensor([5, 5, 0, 0])
    assert scores.coverage(counts) == 2
    assert scores.kl_to_uniform(counts) == pytest.approx(math.log(2))
    assert scores.kl_to_uniform(torch.tensor([3, 3, 3])) == pytest.approx(0.0)
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert scores.class_histogram(probs).tolist() == [2, 1]


# ---------------------------------------------------------------------------- FID, KID
def _fid_scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_known_cases():
    mu = torch.zeros(3)
    cov = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
    assert scores.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)
    # Diagonal Gaussians: |μ1-μ2|² + Σ (σ1 + σ2 − 2 √(σ1 σ2))
    mu2 = torch.tensor([1.0, 0.0, 2.0])
    cov2 = torch.diag(torch.tensor([4.0, 2.0, 1.0]))
    expected = 5.0 + (1 + 4 - 4) + 0 + (3 + 1 - 2 * math.sqrt(3))
    assert scores.frechet_distance(mu, cov, mu2, cov2) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_independent_scipy_computation():
    torch.manual_seed(0)
    a, b = torch.randn(500, 16), torch.randn(500, 16) @ torch.randn(16, 16) * 0.5 + 0.3
    (m1, s1), (m2, s2) = scores.feature_statistics(a), scores.feature_statistics(b)
    expected = _fid_scipy(m1.numpy(), s1.numpy(), m2.numpy(), s2.numpy())
    assert scores.frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(s1, torch.from_numpy(np.cov(a.double().numpy(), rowvar=False)))


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    torch.manual_seed(0)
    a, b = torch.randn(600, 8), torch.randn(600, 8)
    same = scores.kernel_inception_distance(a, b, subsets=20, subset_size=300)
    shifted = scores.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=300)
    assert abs(same.mean) < 0.05 and shifted.mean > 10 * abs(same.mean) + 0.1


# ------------------------------------------------------------------- Inception, offline
@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A randomly initialised Inception with the real architecture, saved like the real file."""
    from gantricks.metrics.inception import save_random_weights

    return save_random_weights(tmp_path_factory.mktemp("inception") / "random_inception.pth")


def test_inception_features_offline(random_inception_weights):
    from gantricks.metrics.inception import Inception

    inc = Inception(random_inception_weights)
    gray = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    out = inc.features([gray])
    assert out["2048"].shape == (3, 2048) and out["logits_unbiased"].shape == (3, 1008)
    rgb = inc.features([gray.repeat(1, 3, 1, 1)])
    torch.testing.assert_close(out["logits_unbiased"], rgb["logits_unbiased"])
    assert inc.describe()["weights_sha256"] and len(inc.describe()["weights_sha256"]) == 16


def test_missing_inception_weights_are_a_clear_error(tmp_path, monkeypatch):
    from gantricks.metrics import inception

    with pytest.raises(GantricksError, match="does not exist"):
        inception.resolve_weights(tmp_path / "nope.pth")

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(GantricksError) as err:
        inception.resolve_weights(None)
    msg = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and "--inception-weights" in msg
    assert "--set eval.inception_weights=PATH" in msg
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.part"))  # no partial file left
    # A cache folder that cannot be created gives the same advice, not a raw OSError.
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "file" / "hub"))
    with pytest.raises(GantricksError, match="could not be downloaded"):
        inception.resolve_weights(None)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(GantricksError, match="not a usable Inception weights file"):
        inception.Inception(bad)


def test_evaluate_run_with_inception_metrics(
    tmp_path, random_inception_weights, capsys, monkeypatch
):
    """`gantricks eval` end to end: IS, FID, KID with a random network, outputs written;
    IS is computed from the samples' 1008 unbiased logits and FID from their pool features."""
    import json

    from gantricks.cli import main
    from gantricks.metrics.inception import Inception
    from gantricks.run import prepare

    from .conftest import QUIET

    opts = {
        "out_dir": str(tmp_path / "runs"),
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "batch_size": 16,
        "steps": 2,
        "device": "cpu",
        "data_dir": str(tmp_path / "data"),
    }
    t, _ = prepare(opts, plugins=[q for q in QUIET if q != "no:tensorboard"])
    t.fit()
    args = [
        "eval",
        str(t.run_dir),
        "--metrics",
        "is,fid,kid",
        "--num-samples",
        "20",
        "--splits",
        "2",
        "--batch-size",
        "10",
        "--reference-samples",
        "10",
        "--inception-weights",
        str(random_inception_weights),
        "--device",
        "cpu",
    ]
    seen: list[dict[str, torch.Tensor]] = []  # what the network gave, call by call
    features = Inception.features
    monkeypatch.setattr(
        Inception, "features", lambda net, b: seen.append(features(net, b)) or seen[-1]
    )
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Inception Score" in printed and "2 contiguous splits" in printed
    result = json.loads((t.run_dir / "eval" / "step_0000002.json").read_text())
    m = result["metrics"]
    # The reference images (10, one batch) are run first, then the 20 samples.
    assert [len(o["2048"]) for o in seen] == [10, 10, 10]
    real = seen[0]["2048"]
    logits = torch.cat([o["logits_unbiased"] for o in seen[1:]])
    pool = torch.cat([o["2048"] for o in seen[1:]])
    # IS: exp(E_x KL(p(y|x) || p(y))) on each of 2 contiguous splits of 10 samples.
    p_yx = torch.softmax(logits, dim=1).numpy()
    expected = []
    for part in np.split(p_yx, 2):
        p_y = part.mean(axis=0, keepdims=True)
        expected.append(math.exp(np.mean(np.sum(part * (np.log(part) - np.log(p_y)), axis=1))))
    assert m["is"]["splits"] == pytest.approx(expected, rel=1e-9)
    assert m["is"]["mean"] == pytest.approx(np.mean(expected), rel=1e-9)
    fid = scores.frechet_distance(
        *scores.feature_statistics(pool), *scores.feature_statistics(real)
    )
    assert m["fid"]["value"] == pytest.approx(fid, rel=1e-9) and m["fid"]["value"] > 0
    assert m["fid"]["reference_images"] == 10
    assert m["kid"]["subset_size"] == 10  # KID's subsets are no larger than the reference
    assert result["networks"]["inception"]["weights"] == "random_inception.pth"
    stats = list((tmp_path / "data" / ".gantricks-stats").glob("glyphs-28px-n10-*.pt"))
    assert len(stats) == 1  # cached next to the data, network hash in the name
    # Scores reach the run's TensorBoard.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(t.run_dir / "tb"))
    acc.Reload()
    assert {"eval/is", "eval/fid", "eval/kid"} <= set(acc.Tags()["scalars"])


def test_folder_reference_statistics_follow_the_folders_images(
    tmp_path, random_inception_weights, monkeypatch
):
    """A folder's FID statistics are cached, reused while its images stay, and recomputed
    (to another file) when an image is added or rewritten."""
    from PIL import Image

    from gantricks.metrics.evaluate import EvalSettings, Evaluator

    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)

    def write(name):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name)

    for i in range(4):
        write(f"{i}.png")
    settings = EvalSettings(
        metrics=["fid"], reference_samples=100, batch_size=8,
        inception_weights=str(random_inception_weights), progress=False,
    )  # fmt: skip

    def reference():
        return Evaluator(settings, "folder", root, image_size=16).reference_statistics()

    first = reference()
    assert first["num_images"] == 4
    with monkeypatch.context() as m:  # read from the cache file: no image is loaded
        m.setattr("gantricks.data.load_dataset", lambda *a, **k: pytest.fail("recomputed"))
        again = reference()
    assert again["path"] == first["path"]
    torch.testing.assert_close(again["mu"], first["mu"])
    Path(first["path"]).write_bytes(b"damaged")  # a cache file that cannot be read is redone
    with pytest.warns(UserWarning, match="unreadable.*computing them again"):
        redone = reference()
    torch.testing.assert_close(redone["mu"], first["mu"])
    torch.save({"mu": first["mu"]}, first["path"])  # readable, but not the statistics
    with pytest.warns(UserWarning, match=r"unreadable \(KeyError\)"):
        redone = reference()
    torch.testing.assert_close(redone["sigma"], first["sigma"])
    assert torch.load(first["path"], weights_only=True)["num_images"] == 4  # rewritten
    write("4.png")
    added = reference()
    assert added["path"] != first["path"] and added["num_images"] == 5
    write("0.png")  # a file replaced with other pixels (and a new modification time)
    rewritten = reference()
    assert rewritten["path"] not in (first["path"], added["path"])
    assert not torch.equal(rewritten["mu"], added["mu"])  # statistics of the new pixels


def test_reference_statistics_are_kept_apart_per_folder_and_contents(tmp_path, monkeypatch):
    from PIL import Image

    from gantricks.metrics.evaluate import _stats_path, folder_fingerprint

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "a" / "1.png")
    first = folder_fingerprint(root)
    assert folder_fingerprint(root) == first
    Image.new("RGB", (8, 8), "red").save(root / "a" / "2.png")
    assert folder_fingerprint(root) != first  # an image added: other statistics
    # Read-only data folders fall back to the user cache, one subfolder per data folder.
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "ro1").write_text("")  # a file: ".gantricks-stats" cannot be made inside
    (tmp_path / "ro2").write_text("")
    p1, p2 = _stats_path(tmp_path / "ro1", "k.pt"), _stats_path(tmp_path / "ro2", "k.pt")
    assert p1 != p2 and p1.name == p2.name == "k.pt"
    assert str(p1).startswith(str(tmp_path / "cache"))
