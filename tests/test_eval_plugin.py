"""The eval plugin: scores during training, best.pt, and its option checks."""

from __future__ import annotations

import json

import pytest
import torch

from gantricks import GantricksError
from gantricks.run import prepare

from .conftest import QUIET


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_eval_plugin_logs_scores_and_keeps_best(tiny, cache):
    quiet = [p for p in QUIET if p != "no:eval"]
    opts = {**tiny, "steps": 4, "eval": {"every": 2, "num_samples": 20}}
    t, _ = prepare(opts, plugins=quiet)
    t.fit()
    rows = [json.loads(x) for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [("eval/classifier_score" in r) for r in rows] == [True, True]
    assert all(1.0 <= r["eval/classifier_score"] <= 10.0 for r in rows)
    assert sorted(p.name for p in (t.run_dir / "eval").glob("*.json")) == [
        "step_0000002.json",
        "step_0000004.json",
    ]
    result = json.loads((t.run_dir / "eval" / "step_0000004.json").read_text())
    network = result["networks"]["classifier"]  # the shipped classifier: nothing trained
    assert (network["name"], network["source"]) == ("glyphs-v2", "shipped")
    assert not cache.exists()
    best = torch.load(t.run_dir / "checkpoints" / "best.pt", weights_only=True)
    plugin = t.plugins.plugins["eval"].obj
    assert best["plugins"]["eval"]["best_value"] == pytest.approx(plugin.best_value)
    # best.pt holds the step whose score was highest, and that score.
    scores = {r["step"]: r["eval/classifier_score"] for r in rows}
    best_step = max(scores, key=scores.get)
    assert best["step"] == best_step
    assert best["plugins"]["eval"]["best_value"] == pytest.approx(scores[best_step])


def test_eval_plugin_is_quiet_without_a_classifier_and_checks_metrics(tiny, tmp_path, cache):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(20):
        Image.new("RGB", (32, 32), (10 * i, 0, 0)).save(folder / f"{i}.png")
    quiet = [p for p in QUIET if p != "no:eval"]
    t, _ = prepare(
        {**tiny, "dataset": "folder", "data_dir": str(folder), "image_size": 16, "steps": 2},
        plugins=quiet,
    )
    t.fit()
    assert not (t.run_dir / "eval").exists() and not cache.exists()  # nothing trained
    with pytest.raises(GantricksError, match=r"eval\.metrics has unknown metric"):
        prepare({**tiny, "eval": {"metrics": ["isc"]}}, plugins=["no:progress"])
    with pytest.raises(GantricksError, match=r"eval\.best='fid' is not one of"):
        prepare({**tiny, "eval": {"metrics": ["classifier"], "best": "fid"}})


def test_eval_plugin_on_stacked_mnist_keeps_best_by_modes(tiny, cache):
    from .conftest import SHARED_DATA, mnist_available

    if not mnist_available():
        pytest.skip("shared MNIST not present")
    quiet = [p for p in QUIET if p != "no:eval"]
    opts = {
        **tiny,
        "dataset": "stacked-mnist",
        "data_dir": str(SHARED_DATA),
        "download": False,
        "steps": 2,
        "eval": {"every": 2, "num_samples": 20},
    }
    t, _ = prepare(opts, plugins=quiet)
    t.fit()
    rows = [json.loads(x) for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= rows[-1]["eval/modes_covered"] <= 20
    result = json.loads((t.run_dir / "eval" / "step_0000002.json").read_text())
    assert result["networks"]["classifier"]["name"] == "mnist-v2"  # read channel by channel
    assert (t.run_dir / "checkpoints" / "best.pt").is_file()


def test_non_finite_weights_are_never_saved_as_best(tiny, cache, tmp_path):
    """Only rank 0 scores and saves best.pt; weights gone NaN must not stop it there alone:
    best.pt is skipped and the loss check at the log step (taken by every rank) stops."""
    from gantricks import TrainingStopped

    poison = tmp_path / "poison.py"
    poison.write_text(
        "from gantricks import hookimpl\n"
        "@hookimpl\ndef gantricks_generator_loss(trainer, terms, batch):\n"
        "    terms['adv'] = terms['adv'] * float('nan')\n"  # G is NaN from step 1
    )
    quiet = [p for p in QUIET if p != "no:eval"]
    opts = {**tiny, "steps": 8, "log_every": 4, "eval": {"every": 1, "num_samples": 20}}
    t, _ = prepare(opts, plugins=[*quiet, str(poison)])
    with (
        pytest.warns(UserWarning, match="best.pt not saved"),
        pytest.raises(TrainingStopped, match="in the 4 steps up to step 4"),
    ):
        t.fit()
    assert not (t.run_dir / "checkpoints" / "best.pt").exists()
    assert (t.run_dir / "checkpoints" / "nonfinite.pt").is_file()


def test_eval_plugin_keeps_the_lowest_fid_as_best(tiny, cache, monkeypatch, tmp_path):
    """FID is lower-is-better: best.pt is the step with the lowest FID seen."""
    import gantricks_plugins.eval as eval_plugin

    fids = {1: 5.0, 2: 3.0, 3: 4.0, 4: 2.5, 5: 6.0}
    seen_steps = []

    class Scores:  # the evaluator's output, one FID per evaluated step
        def __init__(self, settings, *args, **kwargs):
            assert settings.metrics == ["fid"]

        def evaluate(self, generator, nz, rank=0, world_size=1, latent="normal"):
            step = len(seen_steps) + 1
            seen_steps.append(step)
            return {"metrics": {"fid": {"value": fids[step], "reference_images": 10}}}

    monkeypatch.setattr(eval_plugin, "Evaluator", Scores)
    monkeypatch.setattr(eval_plugin, "write_eval_outputs", lambda *a, **k: None)
    quiet = [p for p in QUIET if p != "no:eval"]
    weights = tmp_path / "inception.pth"
    weights.touch()
    opts = {**tiny, "steps": 5, "eval": {"every": 1, "metrics": ["fid"]}}
    opts["eval"]["inception_weights"] = str(weights)
    t, _ = prepare(opts, plugins=quiet)
    t.fit()
    assert seen_steps == [1, 2, 3, 4, 5]
    best = torch.load(t.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["step"] == 4 and best["plugins"]["eval"]["best_value"] == 2.5
