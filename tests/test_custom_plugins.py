"""The README's example plugin, loaded by path, by module and through an entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from gantricks import hookimpl
from gantricks.plugin_manager import available
from gantricks.run import prepare

from .conftest import QUIET

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "r1_penalty.py"


class Spy:
    @hookimpl(trylast=True)
    def gantricks_discriminator_loss(self, trainer, terms, batch):
        self.r1 = terms["r1"].detach()
        real = batch.real.detach().requires_grad_(True)
        logits, _ = trainer.discriminator(real)
        (grad,) = torch.autograd.grad(logits.sum(), real)
        self.expected = 5.0 / 2 * grad.square().flatten(1).sum(1).mean()


def test_example_by_path_matches_its_formula(tiny):
    spy = Spy()
    t, _ = prepare(
        {**tiny, "steps": 2, "r1_penalty": {"gamma": 5.0}},
        plugins=[*QUIET, str(EXAMPLE)],
        extra_plugins=[(spy, "spy")],
    )
    scalars = t.fit()
    assert "loss_d/r1" in scalars
    torch.testing.assert_close(spy.r1, spy.expected)
    assert t.plugins.plugins["r1_penalty"].description.startswith("R1 gradient penalty")


def test_example_docs_copy_is_the_shipped_file():
    page = (EXAMPLE.parents[1] / "docs" / "writing-a-plugin.md").read_text()
    assert EXAMPLE.read_text().strip() in page


def test_example_by_module_path(tiny, tmp_path, monkeypatch):
    pkg = tmp_path / "mytricks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, pkg / "r1.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, "mytricks.r1"])
    assert "r1" in t.plugins.plugins
    assert "loss_d/r1" in t.fit()


def test_example_through_an_installed_entry_point(tiny, tmp_path, monkeypatch):
    """A package that declares [project.entry-points.gantricks] is found by name."""
    site = tmp_path / "site"
    pkg = site / "r1pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(EXAMPLE, pkg / "penalty.py")
    dist = site / "r1pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: r1pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gantricks]\nr1 = r1pkg.penalty\n")
    monkeypatch.syspath_prepend(str(site))
    assert "r1" in available()
    t, _ = prepare({**tiny, "steps": 1, "r1": {"gamma": 1.0}}, plugins=[*QUIET, "r1"])
    assert "loss_d/r1" in t.fit()


@pytest.mark.parametrize("bad", [{"gamma": -1}, {"gama": 1}])
def test_example_options_are_validated(tiny, bad):
    from gantricks import GantricksError

    with pytest.raises(GantricksError, match=r"r1_penalty\.gam"):
        prepare({**tiny, "r1_penalty": bad}, plugins=[str(EXAMPLE)])
