"""A short real run: losses move, samples change, the run folder is complete; the CLI works."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

from gantricks import checkpoint
from gantricks.cli import main
from gantricks.run import prepare

from .conftest import SHARED_DATA, mnist_available


def test_short_glyphs_run_learns_and_writes_everything(tiny):
    opts = {
        **tiny,
        "steps": 60,
        "log_every": 10,
        "batch_size": 32,
        "ngf": 16,
        "ndf": 16,
        "samples": {"every": 30},
        "tensorboard": {"images_every": 30},
    }
    trainer, _ = prepare(opts, plugins=["no:eval"])
    g0 = [p.detach().clone() for p in trainer.models.generator.parameters()]
    first = trainer.preview(16).clone()
    trainer.fit()
    run = trainer.run_dir
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(10, 61, 10))
    # Losses move: D quickly learns to separate real from generated; G's loss rises with it.
    assert rows[0]["loss_d"] != pytest.approx(rows[-1]["loss_d"], abs=1e-3)
    assert min(r["loss_d"] for r in rows) < 1.2
    assert all(r["img_per_s"] > 0 for r in rows)
    # Samples change, and generated images start to look like glyphs: mostly dark background.
    last = trainer.preview(16)
    assert (last - first).abs().mean() > 0.05
    assert not all(
        torch.equal(a, b) for a, b in zip(g0, trainer.models.generator.parameters(), strict=True)
    )
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000030.png",
        "step_0000060.png",
    ]
    with Image.open(run / "samples" / "step_0000060.png") as img:
        assert img.size == (8 * 30 + 2, 8 * 30 + 2)
    assert json.loads((run / "config.json").read_text())["steps"] == 60
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    assert checkpoint.load(run)["step"] == 60


def test_tensorboard_has_every_loss_term(tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _ = prepare(
        {**tiny, "steps": 4, "tensorboard": {"images_every": 2}}, plugins=["no:progress", "no:eval"]
    )
    trainer.fit()
    acc = EventAccumulator(str(trainer.run_dir / "tb"))
    acc.Reload()
    tags = acc.Tags()
    assert {"loss_d", "loss_g", "loss_d/real", "loss_d/fake", "loss_g/adv", "img_per_s"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in acc.Scalars("loss_g")] == [2, 4]
    assert "samples" in tags["images"]
    assert "config/text_summary" in tags["tensors"]


def test_cli_train_sample_and_plugins(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(
        [
            "train",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--set",
            "ngf=8",
            "ndf=8",
            "--out-dir",
            str(out),
            "--name",
            "cli",
            "--plugins",
            "no:tensorboard,no:eval",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    grid = tmp_path / "grid.png"
    assert main(["sample", str(out / "cli"), "--n", "10", "--out", str(grid), "--nrow", "5"]) == 0
    with Image.open(grid) as img:
        assert img.size == (5 * 30 + 2, 2 * 30 + 2)
    before = warnings.formatwarning
    assert main(["plugins"]) == 0
    assert warnings.formatwarning is before  # the CLI's one-line format is put back
    listing = capsys.readouterr().out
    assert "tensorboard (on by default" in listing and "--set samples.every=500" in listing
    # Plugins with step hooks say whether a CUDA graph replays them; the others say nothing.
    blocks: dict[str, str] = {}
    for line in listing.splitlines():
        if line and not line.startswith(" "):
            name = line.split()[0]
            blocks[name] = ""
        elif blocks:
            blocks[name] += line + "\n"
    assert "cuda_graph: its step hooks are replayed" in blocks["feature_matching"]
    assert "cuda_graph: its step hooks are replayed" in blocks["labels"]
    assert "cuda_graph" not in blocks["minibatch"] and "cuda_graph" not in blocks["tensorboard"]


def test_cli_errors_are_one_paragraph_and_exit_2(tmp_path, capsys):
    for args in (["train", "--dataset", "foo"], ["train", "--steps", "2", "--epochs", "1"], []):
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: " in err and "--help`" in err, err
    usage_error = _usage_error(["train", "--dataset", "foo"])  # as a shell user sees it
    assert usage_error.startswith("gantricks train: error: argument --dataset: invalid choice")
    assert main(["train", "--plugins", "nosuch", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gantricks: error: unknown plugin 'nosuch'") and err.count("\n") == 1
    assert main(["train", "--set", "samples.evry=3", "--out-dir", str(tmp_path)]) == 2
    assert "samples.evry" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nothing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    code = main(
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "none"),
            "--no-download",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def _usage_error(args: list[str]) -> str:
    """What argparse prints for a bad command line (it exits: run it in a subprocess)."""
    run = subprocess.run([sys.executable, "-m", "gantricks", *args], capture_output=True, text=True)
    assert run.returncode == 2
    return run.stderr


def test_console_script_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gantricks", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("gantricks ")
    # A warning reads as one line of the tool's, without Python's file:line and source.
    args = ["train", "--steps", "1", "--batch-size", "8", "--set", "ngf=8", "ndf=8"]
    args += ["--set", "cuda_graph=true", "--device", "cpu", "--out-dir", str(tmp_path)]
    args += ["--plugins", "no:progress,no:tensorboard,no:eval,no:samples"]
    run = subprocess.run([sys.executable, "-m", "gantricks", *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "cuda_graph" in line]
    assert warned == [
        "gantricks: warning: cuda_graph=true is ignored: the run is on cpu, not CUDA; the "
        "step runs eagerly"
    ]
    assert ".py:" not in run.stderr


@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_train_on_shared_mnist(tiny):
    trainer, _ = prepare(
        {
            **tiny,
            "dataset": "mnist",
            "data_dir": str(SHARED_DATA),
            "download": False,
            "steps": 4,
            "image_size": 32,
        },
        plugins=["no:progress", "no:tensorboard", "no:eval"],
    )
    trainer.fit()
    assert trainer.data.images.shape == (60_000, 1, 32, 32)
    assert trainer.preview(4).shape == (4, 1, 32, 32)


@pytest.mark.slow
def test_default_run_improves_samples(tmp_path):
    """The README's first run, shortened: D and G stay in balance over 1500 steps."""
    trainer, _ = prepare(
        {"out_dir": str(tmp_path), "steps": 1500, "device": "cpu"}, plugins=["no:progress"]
    )
    trainer.fit()
    rows = [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(0.05 < r["loss_d"] < 2.0 for r in rows[-5:])


def test_compile_failing_mid_step_falls_back_to_exactly_the_eager_run(tiny):
    # Inductor can fail in the generator's compiled backward, after the discriminator's update
    # of the same step: the fallback must undo that update, not apply it twice.
    from gantricks.train.compiled import CompiledStep

    opts = {**tiny, "steps": 3}
    eager, _ = prepare(opts, plugins=["no:progress", "no:tensorboard", "no:eval"])
    eager.fit()
    trainer, _ = prepare(opts, plugins=["no:progress", "no:tensorboard", "no:eval"])
    real_step, calls = trainer.step_fn, []

    def step_failing_once(*inputs):
        calls.append(1)
        out = real_step(*inputs)
        if len(calls) == 1:
            raise AssertionError("assert_size_stride: expected stride 1 at dim=1")
        return out

    # The wrapper as `compile=true` installs it, around a step that fails as inductor can
    # (no module is compiled here: that would take minutes on a CPU).
    trainer.step_fn = CompiledStep(step_failing_once, [], trainer.state_dict, trainer._restore)
    with pytest.warns(UserWarning, match="torch.compile failed .*training continues"):
        trainer.fit()
    assert len(calls) == 4  # the failed try, then three eager steps
    for a, b in zip(
        eager.models.discriminator.state_dict().values(),
        trainer.models.discriminator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    for a, b in zip(
        eager.models.generator.parameters(), trainer.models.generator.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    assert trainer.last_scalars["loss_d"] == eager.last_scalars["loss_d"]


def test_new_runs_claim_their_folders(tmp_path):
    """Runs started at once with one name (a shell loop over seeds within one second) get
    NAME, NAME-2, ...; an empty folder made beforehand is used, one holding files is not."""
    from concurrent.futures import ThreadPoolExecutor

    from gantricks.config import validate_core
    from gantricks.run.folder import claim_new_run_dir as _new_run_dir

    config = validate_core({"out_dir": str(tmp_path), "name": "run"})
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda _: _new_run_dir(config), range(8)))
    folders = [f for f, _ in claims]
    assert sorted(f.name for f in folders) == sorted(["run"] + [f"run-{k}" for k in range(2, 9)])
    assert all((f / "config.json").is_file() for f in folders)
    # (Which claim reports having made its folder is left to the race: a claim that finds
    # another's new folder still empty may take it, and then does not remove it if refused.)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    empty = _new_run_dir(validate_core({"out_dir": str(tmp_path), "name": "empty"}))
    assert empty == (tmp_path / "empty", False)  # found empty, not made
    notes = _new_run_dir(validate_core({"out_dir": str(tmp_path), "name": "notes"}))
    assert notes == (tmp_path / "notes-2", True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_a_claim_retries_a_folder_given_back_meanwhile(tmp_path, monkeypatch):
    """Between seeing a folder empty and creating its config.json, a refused run may
    remove that folder; the claim then makes it again rather than failing."""
    from pathlib import Path

    from gantricks.config import validate_core
    from gantricks.run.folder import claim_new_run_dir as _new_run_dir

    (tmp_path / "run").mkdir()  # found empty ...
    real_open = Path.open
    calls = []

    def open_once_removed(self, mode="r", *args, **kwargs):
        if mode == "x" and not calls:
            calls.append(self)
            self.parent.rmdir()  # ... and given back before the claim
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_once_removed)
    path, made = _new_run_dir(validate_core({"out_dir": str(tmp_path), "name": "run"}))
    assert (path, made) == (tmp_path / "run", True) and (path / "config.json").is_file()
    assert calls == [tmp_path / "run" / "config.json"]
