"""Loading, blocking, configuring plugins, and the errors users see."""

from __future__ import annotations

import sys
import textwrap

import pytest

from gantricks import GantricksError, PluginError
from gantricks.plugin_manager import DEFAULT_PLUGINS, available, resolve_specs
from gantricks.run import prepare

from .conftest import QUIET

PLUGIN_SRC = '''
"""Adds a constant term to the generator loss."""
from pydantic import BaseModel, ConfigDict, Field
from typing import Literal
from gantricks import hookimpl


class Plugin:
    """Adds a constant term to the generator loss."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        weight: float = Field(1.0, ge=0)
        mode: Literal["a", "b"] = "a"

    def __init__(self, config):
        self.config = config

    @hookimpl
    def gantricks_generator_loss(self, terms, batch):
        terms["const"] = self.config.weight * batch.gen_logits.new_ones(())
'''

BROKEN_SRC = """
from gantricks import hookimpl

@hookimpl
def gantricks_after_generator_step(trainer):
    if trainer.step == 1:
        raise ValueError("boom at step one")
"""


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "const_term.py"
    path.write_text(PLUGIN_SRC)
    return path


def test_builtin_plugins_are_entry_points():
    eps = available()
    for name in DEFAULT_PLUGINS:
        assert name in eps
        assert eps[name].value.startswith("gantricks_plugins.")


def test_resolve_specs_adds_defaults_and_blocks():
    assert resolve_specs([]) == list(DEFAULT_PLUGINS)
    assert resolve_specs(["no:tensorboard", "x.py"]) == [
        "progress",
        "checkpoint",
        "samples",
        "eval",
        "x.py",
    ]
    with pytest.raises(GantricksError, match="no:tensorbord"):
        resolve_specs(["no:tensorbord"])


def test_unknown_plugin_lists_available(tiny):
    with pytest.raises(GantricksError) as err:
        prepare(tiny, plugins=["minibatchh"])
    msg = str(err.value)
    assert "unknown plugin 'minibatchh' (did you mean 'minibatch'?);" in msg
    for name in DEFAULT_PLUGINS:
        assert name in msg


def test_file_plugin_with_options(tiny, plugin_file):
    trainer, _ = prepare(
        {**tiny, "steps": 2, "const_term": {"weight": 2.5}}, plugins=[*QUIET, str(plugin_file)]
    )
    assert trainer.plugins.plugins["const_term"].config.weight == 2.5
    scalars = trainer.fit()
    assert scalars["loss_g/const"] == pytest.approx(2.5)
    assert trainer.config.plugin_options["const_term"] == {"weight": 2.5, "mode": "a"}
    saved = (trainer.run_dir / "config.json").read_text()
    assert '"const_term"' in saved and '"weight": 2.5' in saved


def test_module_plugin(tiny, plugin_file, monkeypatch):
    pkg = plugin_file.parent / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "trick.py").write_text(PLUGIN_SRC)
    monkeypatch.syspath_prepend(str(plugin_file.parent))
    trainer, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, "mypkg.trick"])
    assert "trick" in trainer.plugins.plugins
    sys.modules.pop("mypkg.trick", None)


def test_bad_option_key_names_key_and_allowed(tiny, plugin_file):
    with pytest.raises(GantricksError) as err:
        prepare({**tiny, "const_term": {"wieght": 1.0}}, plugins=[str(plugin_file)])
    msg = str(err.value)
    assert "const_term.wieght" in msg and "mode, weight" in msg


def test_bad_option_value_names_key_and_allowed(tiny, plugin_file):
    with pytest.raises(GantricksError) as err:
        prepare({**tiny, "const_term": {"mode": "c"}}, plugins=[str(plugin_file)])
    msg = str(err.value)
    assert "const_term.mode='c'" in msg and "'a' or 'b'" in msg
    with pytest.raises(GantricksError, match=r"const_term.weight=-1"):
        prepare({**tiny, "const_term": {"weight": -1}}, plugins=[str(plugin_file)])


def test_bad_core_option(tiny):
    with pytest.raises(GantricksError, match=r"unknown option 'stepz'.*steps"):
        prepare({**tiny, "stepz": 3})
    with pytest.raises(GantricksError, match=r"batch_size=0 is invalid"):
        prepare({**tiny, "batch_size": 0})
    with pytest.raises(GantricksError, match=r"dataset='cifar100'.*'glyphs'"):
        prepare({**tiny, "dataset": "cifar100"})
    with pytest.raises(GantricksError, match=r"image_size 30 is not supported"):
        prepare({**tiny, "image_size": 30})


def test_options_for_a_plugin_not_enabled(tiny):
    with pytest.raises(GantricksError, match=r"plugin 'minibatch', which is not enabled"):
        prepare({**tiny, "minibatch": {"kernels": 5}})


def test_error_inside_plugin_names_it(tiny, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN_SRC)
    trainer, _ = prepare({**tiny, "steps": 3}, plugins=[*QUIET, str(path)])
    with pytest.raises(PluginError) as err:
        trainer.fit()
    assert err.value.plugin == "broken"
    assert err.value.hook == "gantricks_after_generator_step"
    assert "boom at step one" in str(err.value)


def test_plugin_file_missing_or_not_importable(tiny, tmp_path):
    with pytest.raises(GantricksError, match="does not exist"):
        prepare(tiny, plugins=[str(tmp_path / "nope.py")])
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(GantricksError, match="failed to import"):
        prepare(tiny, plugins=[str(bad)])


def test_plugin_without_config_rejects_options(tiny, tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(textwrap.dedent('"""A plugin without options."""\n'))
    with pytest.raises(GantricksError, match="takes no options"):
        prepare({**tiny, "plain": {"x": 1}}, plugins=[str(path)])


def test_options_for_a_misspelt_plugin_suggest_the_name(tiny):
    with pytest.raises(GantricksError, match=r"neither a core option nor a plugin.*'samples'\?"):
        prepare({**tiny, "sample": {"every": 10}})
    with pytest.raises(GantricksError) as err:
        prepare({**tiny, "minibatch": {"kernals": 5}}, plugins=["minibatch"])
    assert "minibatch.kernals" in str(err.value) and "plugin_options" not in str(err.value)
