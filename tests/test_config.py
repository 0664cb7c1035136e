"""Option parsing and precedence."""

from __future__ import annotations

import json

import pytest

from gantricks import GantricksError
from gantricks.cli import build_parser, train_options
from gantricks.config import base_for, parse_sets, parse_value, validate_core
from gantricks.run import prepare

from .conftest import QUIET


def test_parse_value_types():
    assert parse_value("3") == 3
    assert parse_value("2e-4") == 2e-4
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("l2sq") == "l2sq"
    assert parse_value('"quoted"') == "quoted"
    assert parse_value("none") is None


def test_parse_sets_nested():
    assert parse_sets(["steps=10", "minibatch.kernels=50", "minibatch.kernel_dim=5"]) == {
        "steps": 10,
        "minibatch": {"kernels": 50, "kernel_dim": 5},
    }
    with pytest.raises(GantricksError, match="KEY=VALUE"):
        parse_sets(["steps"])


def test_base_for_sizes():
    assert base_for(28) == (7, 2)
    assert base_for(32) == (4, 3)
    assert base_for(64) == (4, 4)
    assert base_for(128) == (4, 5)
    with pytest.raises(ValueError, match="48"):
        base_for(48)


def test_precedence_file_then_set_then_flags(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("steps = 100\nbatch_size = 32\nseed = 1\n[samples]\nevery = 7\n")
    args = build_parser().parse_args(
        ["train", "--config", str(cfg), "--set", "batch_size=64", "samples.n=16", "--seed", "5"]
    )
    opts = train_options(args)
    assert opts == {"steps": 100, "batch_size": 64, "seed": 5, "samples": {"every": 7, "n": 16}}


def test_epochs_flag_overrides_steps_from_file(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("steps = 100\n")
    args = build_parser().parse_args(["train", "--config", str(cfg), "--epochs", "2"])
    assert train_options(args) == {"epochs": 2.0}


def test_bad_toml_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("steps = = 3\n")
    args = build_parser().parse_args(["train", "--config", str(cfg)])
    with pytest.raises(GantricksError, match="not valid TOML"):
        train_options(args)
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "none.toml")])
    with pytest.raises(GantricksError, match="does not exist"):
        train_options(args)


def test_resolved_config_written(tiny):
    from gantricks.run import prepare

    trainer, _ = prepare({**tiny, "steps": 1})
    saved = json.loads((trainer.run_dir / "config.json").read_text())
    assert saved["image_size"] == 28 and saved["steps"] == 1
    assert saved["plugins"] == ["progress", "tensorboard", "checkpoint", "samples", "eval"]
    assert saved["plugin_options"]["samples"] == {"every": 500, "n": 64}


def test_steps_and_epochs_together_name_the_rule_not_the_whole_config():
    with pytest.raises(GantricksError) as err:
        validate_core({"steps": 10, "epochs": 2})
    assert str(err.value) == "config: give steps or epochs, not both."


def test_plugins_option_may_be_one_comma_separated_string(tiny):
    t, _ = prepare({**tiny, "steps": 1, "plugins": "no:progress,no:tensorboard,no:eval,minibatch"})
    assert "minibatch" in t.plugins.plugins and "progress" not in t.plugins.plugins
    with pytest.raises(GantricksError, match=r"plugins=3 is invalid: give a list"):
        prepare({**tiny, "plugins": 3})


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_gpu_is_a_clear_error_before_any_run_folder(tiny, tmp_path):
    with pytest.raises(GantricksError, match="--device cuda was asked for"):
        prepare({**tiny, "device": "cuda"})
    assert not (tmp_path / "runs").exists()


def test_defaults_are_the_papers(tiny):
    """The defaults a user gets without options: DCGAN's optimisation (Radford et al.),
    the Inception Score protocol (Salimans et al.: 50,000 samples, 10 splits) and the
    minibatch layer's B = 100, C = 5 on the authors' models (on dcgan: 5 x 3, measured)."""
    from gantricks.metrics.evaluate import EvalSettings
    from gantricks_plugins.minibatch import MinibatchDiscrimination as Minibatch

    core = validate_core({})
    assert (core.lr_g, core.lr_d, core.beta1, core.batch_size) == (2e-4, 2e-4, 0.5, 128)
    assert (core.nz, core.latent) == (100, "normal")
    settings = EvalSettings()
    assert (settings.num_samples, settings.splits, settings.metrics) == (50_000, 10, ["is"])
    args = build_parser().parse_args(["eval", "RUN"])
    assert (args.num_samples, args.splits) == (50_000, 10)
    from gantricks_plugins.minibatch import default_size

    # The paper's B = 100, C = 5 on the authors' models; dcgan's size came from a grid.
    assert (Minibatch.Config().kernels, Minibatch.Config().kernel_dim) == (None, None)
    assert default_size("improved-gan") == default_size("improved-gan-mlp") == (100, 5)
    assert default_size("dcgan") == (5, 3)
    t, _ = prepare({k: v for k, v in tiny.items() if k not in ("batch_size",)}, plugins=QUIET)
    for opt in (t.opt_g, t.opt_d):
        assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert t.config.batch_size == 128
