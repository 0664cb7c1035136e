"""Checkpoints: atomic writes, clear errors, exact resume."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import pytest
import torch

from gantricks import GantricksError, checkpoint, hookimpl
from gantricks.data import BatchSampler
from gantricks.run import prepare

from .conftest import QUIET


def test_atomic_write_keeps_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1}, path)

    def exploding_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(GantricksError, match="corrupt or not a checkpoint: it is not the zip"):
        checkpoint.load(bad)
    checkpoint.save_atomic({"step": 1, "weights": torch.zeros(1000)}, bad)
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])  # cut short: a copy that did not finish
    with pytest.raises(GantricksError, match=r"corrupt.*cut short"):
        checkpoint.load(bad)
    damaged = bytearray(whole)
    with zipfile.ZipFile(io.BytesIO(whole)) as archive:
        member = archive.infolist()[-1].header_offset
    damaged[member : member + 4] = b"xxxx"  # the archive's index is intact, a member's is not
    bad.write_bytes(bytes(damaged))
    with pytest.raises(GantricksError, match="it could not be unpacked") as err:
        checkpoint.load(bad)
    # torch's paragraph about its zip reader, and its advice to load unsafely, are not quoted.
    assert "miniz" not in str(err.value) and "weights_only" not in str(err.value)
    bad.write_bytes(b"")
    with pytest.raises(GantricksError, match="the file is empty"):
        checkpoint.load(bad)
    if os.geteuid() != 0:  # root reads any file
        bad.write_bytes(whole)
        bad.chmod(0)
        with pytest.raises(GantricksError, match="it could not be read"):
            checkpoint.load(bad)
        bad.chmod(0o644)
    torch.save({"step": 1, "path": Path("x")}, bad)  # a pickled object: never unpickled
    with pytest.raises(GantricksError, match="could run code") as err:
        checkpoint.load(bad)
    assert "weights_only" not in str(err.value)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(GantricksError, match="not a gantricks checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    with pytest.raises(GantricksError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "run").mkdir()
    with pytest.raises(GantricksError, match="without a checkpoint"):
        checkpoint.load(tmp_path / "run")


def _params(trainer):
    return {
        **{f"g.{k}": v for k, v in trainer.models.generator.state_dict().items()},
        **{f"d.{k}": v for k, v in trainer.models.discriminator.state_dict().items()},
    }


@pytest.mark.parametrize("generator_batch", ["same", "fresh"])
def test_resume_continues_exactly(tiny, generator_batch):
    """2N steps in one go == N steps, stop, resume for N more (CPU, bit for bit); with
    generator_batch=fresh the second data order is part of the checkpoint too."""
    tiny = {**tiny, "generator_batch": generator_batch}
    full, _ = prepare({**tiny, "steps": 8, "name": "full"}, plugins=QUIET)
    full.fit()
    half, _ = prepare({**tiny, "steps": 4, "name": "half"}, plugins=QUIET)
    half.fit()
    assert (half.run_dir / "checkpoints" / "last.pt").is_file()
    resumed, ckpt = prepare({"steps": 8}, resume=half.run_dir)
    assert resumed.run_dir == half.run_dir and ckpt["step"] == 4
    resumed.fit(resume=ckpt)
    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for opt in ("opt_g", "opt_d"):
        sa = getattr(full, opt).state_dict()["state"]
        sb = getattr(resumed, opt).state_dict()["state"]
        for i in sa:
            assert torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])
    rows = [json.loads(x) for x in (half.run_dir / "metrics.jsonl").read_text().splitlines()]
    full_rows = [json.loads(x) for x in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [r["loss_g"] for r in rows] == [r["loss_g"] for r in full_rows]


def test_resume_drops_metrics_logged_after_the_checkpoint(tiny):
    t, _ = prepare({**tiny, "steps": 4, "checkpoint": {"every": 2, "keep_every": 2}}, plugins=QUIET)
    t.fit()
    ckpt_dir = t.run_dir / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        "last.pt",
        "step_0000002.pt",
        "step_0000004.pt",
    ]
    with pytest.warns(UserWarning, match=r"from step_0000002.pt \(step 2\), not from its last"):
        resumed, ckpt = prepare({"steps": 6}, resume=ckpt_dir / "step_0000002.pt")
    assert ckpt["step"] == 2
    resumed.fit(resume=ckpt)
    steps = [json.loads(x)["step"] for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_architecture_mismatch_is_a_clear_error(tiny):
    t, _ = prepare({**tiny, "steps": 1}, plugins=QUIET)
    t.fit()
    with pytest.raises(GantricksError, match="architecture differs"):
        r, ckpt = prepare({"ngf": 16, "steps": 2}, resume=t.run_dir)
        r.fit(resume=ckpt)
    with pytest.raises(GantricksError, match=r"1-channel 28px"):
        prepare({"image_size": 32, "steps": 2}, resume=t.run_dir)


def test_missing_plugin_state_is_a_clear_error(tiny, tmp_path):
    src = (
        "from gantricks import hookimpl\nimport torch\nNAME = 'keeps_state'\n"
        "@hookimpl\ndef gantricks_state_dict(trainer):\n    return {'x': torch.ones(1)}\n"
        "@hookimpl\ndef gantricks_load_state_dict(trainer, state):\n    pass\n"
    )
    plugin = tmp_path / "stateful.py"
    plugin.write_text(src)
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, str(plugin)])
    t.fit()
    assert "keeps_state" in checkpoint.load(t.run_dir)["plugins"]
    r, ckpt = prepare({"steps": 2}, plugins=["no:keeps_state"], resume=t.run_dir)  # its NAME
    assert not any("stateful" in s for s in r.config.plugins)
    with pytest.raises(GantricksError, match=r"plugin\(s\) keeps_state, which are not enabled"):
        r.fit(resume=ckpt)
    plain, _ = prepare({**tiny, "steps": 1, "name": "plain"}, plugins=QUIET)
    plain.fit()
    r, ckpt = prepare({"steps": 2}, plugins=[*QUIET, str(plugin)], resume=plain.run_dir)
    with pytest.raises(GantricksError, match=r"no state for plugin\(s\) keeps_state"):
        r.fit(resume=ckpt)


def test_plugin_missing_from_environment_on_resume(tiny, tmp_path):
    plugin = tmp_path / "gone.py"
    plugin.write_text("from gantricks import hookimpl\n")
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, str(plugin)])
    t.fit()
    os.remove(plugin)
    with pytest.raises(GantricksError, match=r"gone\.py"):
        prepare({"steps": 2}, resume=t.run_dir)


def test_nonfinite_loss_stops_with_checkpoint_and_keeps_last_good(tiny, tmp_path, capsys):
    from gantricks import TrainingStopped

    poison = tmp_path / "poison.py"
    poison.write_text(
        "from gantricks import hookimpl\n"
        "@hookimpl\ndef gantricks_generator_loss(trainer, terms, batch):\n"
        "    if trainer.step >= 4:\n"
        "        terms['adv'] = terms['adv'] * float('nan')\n"
    )
    t, _ = prepare({**tiny, "steps": 10, "checkpoint": {"every": 2}}, plugins=[*QUIET, str(poison)])
    with pytest.raises(TrainingStopped, match="non-finite"):
        t.fit()
    ckpts = Path(t.run_dir / "checkpoints")
    last = checkpoint.load(ckpts / "last.pt")
    assert last["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["generator"].values() if v.is_floating_point())
    assert (ckpts / "nonfinite.pt").is_file()
    out = capsys.readouterr().out
    assert f"the last good checkpoint is {ckpts / 'last.pt'} (step 4)" in out
    # Before any save there is no good checkpoint to point to, and none is claimed.
    t, _ = prepare(
        {**tiny, "steps": 10, "log_every": 5, "checkpoint": {"every": 0}},
        plugins=[*QUIET, str(poison)],
    )
    with pytest.raises(TrainingStopped, match="in the 5 steps up to step 5"):
        t.fit()
    assert "no good checkpoint was saved before it" in capsys.readouterr().out
    assert not (t.run_dir / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupt_finishes_step_and_saves(tiny, signum):
    import signal

    from gantricks import hookimpl

    sig = getattr(signal, signum)
    before = signal.getsignal(sig)

    class Interrupt:
        @hookimpl
        def gantricks_step_end(self, step):
            if step == 3:
                os.kill(os.getpid(), sig)

    t, _ = prepare({**tiny, "steps": 10}, plugins=QUIET, extra_plugins=[(Interrupt(), "c")])
    t.fit()
    assert t.step == 3 and t.stop_requested
    assert checkpoint.load(t.run_dir)["step"] == 3
    assert signal.getsignal(sig) is before  # the handler is the caller's again


def test_atomic_write_gives_the_usual_file_mode(tmp_path, monkeypatch):
    import stat

    from gantricks import files

    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        monkeypatch.setattr(files, "_UMASK", umask)
        path = checkpoint.atomic_write_text(tmp_path / f"result-{mode:o}.json", "{}")
        assert stat.S_IMODE(path.stat().st_mode) == mode  # as open() would, not always 0600
        assert path.read_text() == "{}"
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_applies_this_runs_optimiser_settings(tiny):
    opts = {**tiny, "steps": 2, "name": "run"}
    first, _ = prepare(opts, plugins=QUIET)
    first.fit()
    resumed, ckpt = prepare(
        {**opts, "steps": 3, "adam_eps": 1e-4, "lr_d": 1e-3},
        plugins=None,
        resume=str(first.run_dir),
    )
    resumed.fit(resume=ckpt)
    assert resumed.step == 3
    d, g = resumed.opt_d.param_groups[0], resumed.opt_g.param_groups[0]
    assert (d["eps"], d["lr"], g["eps"], g["lr"]) == (1e-4, 1e-3, 1e-4, first.config.lr_g)


def test_resume_on_another_device_type_reseeds_the_noise_and_says_so(tiny):
    """A CPU checkpoint continued on a GPU (or back) holds a z-generator state of another
    format; the run continues from a stream seeded by seed and step, with a warning."""
    opts = {**tiny, "steps": 2, "name": "run"}
    first, _ = prepare(opts, plugins=QUIET)
    first.fit()
    resumed, ckpt = prepare({"steps": 4}, plugins=None, resume=str(first.run_dir))
    ckpt["noise"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    with pytest.warns(UserWarning, match="another device type than cpu"):
        resumed.load_core_state(ckpt)
    expected = torch.Generator().manual_seed(first.config.seed + 2 + 2)
    assert torch.equal(resumed.noise.get_state(), expected.get_state())
    with pytest.warns(UserWarning, match="not bit-identical"):
        resumed.fit(resume=ckpt)
    assert resumed.step == 4 and resumed.parameters_finite()


def test_sampler_state_must_fit_the_data_and_batch():
    images = torch.zeros(100, 1, 4, 4, dtype=torch.uint8)
    a = BatchSampler(images, 10, seed=0)
    for _ in range(8):
        a.next()
    state = a.state_dict()
    with pytest.raises(GantricksError, match=r"images as 100 images; this run has 50"):
        BatchSampler(images[:50], 10, seed=0).load_state_dict(state, "the training images")
    with pytest.raises(GantricksError, match=r"global batches of 10; this run asks for 20"):
        BatchSampler(images, 20, seed=0).load_state_dict(state)
    # Older checkpoints carry no batch size; a position past the epoch's end (8 of 5
    # batches) starts the next epoch instead of drawing empty batches forever.
    b = BatchSampler(images, 20, seed=0)
    b.load_state_dict({k: v for k, v in state.items() if k != "global_batch"})
    assert b.next().shape[0] == 20 and (b.epoch, b.position) == (1, 1)


def test_resume_with_another_batch_size_or_dataset_is_a_clear_error(tiny):
    t, _ = prepare({**tiny, "steps": 2}, plugins=QUIET)
    t.fit()
    config = (t.run_dir / "config.json").read_text()
    r, ckpt = prepare({"steps": 4, "batch_size": 32}, resume=t.run_dir)
    with pytest.raises(GantricksError, match=r"batches of 16; this run asks for 32"):
        r.fit(resume=ckpt)
    assert checkpoint.load(t.run_dir)["step"] == 2  # the checkpoint is untouched
    assert (t.run_dir / "config.json").read_text() == config  # and so is the config
    # glyphs and MNIST have the same shape; the dataset is still not the run's.
    with pytest.raises(GantricksError, match=r"trained on dataset 'glyphs'; this run asks"):
        prepare({"steps": 4, "dataset": "mnist"}, resume=t.run_dir)


def test_resume_may_leave_out_a_plugin_but_not_configure_it(tiny):
    plugins = ["no:progress", "no:tensorboard", "no:eval"]  # samples and checkpoint stay
    t, _ = prepare({**tiny, "steps": 2, "samples": {"every": 1}}, plugins=plugins)
    t.fit()
    r, ckpt = prepare({"steps": 3}, plugins=[*plugins, "no:samples"], resume=t.run_dir)
    assert "samples" not in r.plugins.plugins
    r.fit(resume=ckpt)
    assert r.step == 3
    with pytest.raises(GantricksError, match="options were given for plugin 'samples'") as err:
        prepare(
            {"steps": 3, "samples": {"every": 2}},
            plugins=[*plugins, "no:samples"],
            resume=t.run_dir,
        )
    assert "the checkpoint's is checkpoint." in str(err.value)  # as the resumed run saved it


def test_resume_with_only_removals_edits_the_checkpoints_plugins(tiny):
    t, _ = prepare({**tiny, "steps": 2}, plugins=[*QUIET, "label_smooth"])
    t.fit()
    assert t.config.plugins == ["checkpoint", "samples", "label_smooth"]
    # Only no:NAME entries: the checkpoint's list minus those (eval is already gone).
    r, ckpt = prepare({"steps": 3}, plugins=["no:samples", "no:eval"], resume=t.run_dir)
    assert r.config.plugins == list(r.plugins.plugins) == ["checkpoint", "label_smooth"]
    r.fit(resume=ckpt)
    assert checkpoint.load(t.run_dir)["config"]["plugins"] == ["checkpoint", "label_smooth"]
    # Any other entry makes the list whole again, defaults included.
    whole, _ = prepare({"steps": 4}, plugins=[*QUIET, "no:samples", "minibatch"], resume=t.run_dir)
    assert whole.config.plugins == ["checkpoint", "minibatch"]
    with pytest.raises(GantricksError, match=r"not known \(did you mean no:label_smooth\?\)"):
        prepare({"steps": 4}, plugins=["no:label_smoth"], resume=t.run_dir)


def test_resume_extends_a_run_in_the_other_unit(tiny):
    t, _ = prepare({**tiny, "steps": 2}, plugins=QUIET)
    t.fit()
    r, _ = prepare({"epochs": 0.5}, resume=t.run_dir)
    assert (r.config.steps, r.config.epochs) == (None, 0.5)
    assert r.total_steps == math.ceil(0.5 * r.sampler.batches_per_epoch)
    back, _ = prepare({"steps": 3}, resume=t.run_dir)
    assert (back.config.steps, back.config.epochs) == (3, None)


def test_fractional_epochs_are_not_rounded_up_by_float_error(tiny):
    t, _ = prepare({**tiny, "steps": None, "epochs": 1.1}, plugins=QUIET)
    t.steps_per_epoch = 100  # 1.1 × 100 is 110.00000000000001 in floating point
    assert t._total_steps() == 110


def test_resume_after_a_kill_mid_write_drops_the_cut_metrics_line(tiny):
    t, _ = prepare({**tiny, "steps": 2}, plugins=QUIET)
    t.fit()
    path = t.run_dir / "metrics.jsonl"
    path.write_text(path.read_text() + '{"step": 3, "loss_d": 0.')
    r, ckpt = prepare({"steps": 4}, resume=t.run_dir)
    with pytest.warns(UserWarning, match="dropped 1 unreadable line"):
        r.fit(resume=ckpt)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [2, 4]


def test_final_checkpoint_is_saved_before_other_plugins_end_work(tiny):
    class Broken:
        @hookimpl
        def gantricks_train_end(self):
            raise RuntimeError("cannot write the summary")

    t, _ = prepare(
        {**tiny, "steps": 3, "checkpoint": {"every": 0}},
        plugins=QUIET,
        extra_plugins=[(Broken(), "broken")],
    )
    with pytest.raises(Exception, match="cannot write the summary"):
        t.fit()
    assert checkpoint.load(t.run_dir)["step"] == 3
