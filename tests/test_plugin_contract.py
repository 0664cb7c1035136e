"""The plugin contract: public API only, interfaces every model satisfies, mistakes caught
before training, failures that keep the run, and the helpers of gantricks.Plugin."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gantricks import (
    DiscriminatorLike,
    GantricksError,
    GeneratorLike,
    Plugin,
    PluginConfig,
    TrainerAPI,
    hookimpl,
)
from gantricks.ordering import call_order
from gantricks.run import prepare

from .conftest import QUIET

ROOT = Path(__file__).resolve().parents[1]
QUIET_CLI = "no:progress,no:tensorboard,no:eval"


def _gantricks(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gantricks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


# ------------------------------------------------------------------ the public API
def _gantricks_imports(path: Path) -> list[str]:
    """Every module a file imports from the gantricks package (``gantricks`` itself for
    ``from gantricks import X``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [n for n in names if n == "gantricks" or n.startswith("gantricks.")]
    return out


@pytest.mark.parametrize(
    "path",
    sorted([*(ROOT / "plugins").glob("*.py"), *(ROOT / "examples").glob("*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_plugins_and_examples_use_only_the_public_api(path):
    assert set(_gantricks_imports(path)) <= {"gantricks"}, path


def test_the_public_api_exports_what_it_lists():
    import gantricks

    assert all(hasattr(gantricks, name) for name in gantricks.__all__)


# ----------------------------------------------------------------- the core itself
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """gantricks module -> gantricks modules it imports, anywhere in its source (function
    bodies and ``if TYPE_CHECKING:`` blocks included)."""
    files = {_module_name(p): p for p in (ROOT / "gantricks").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # The most specific module each import names: `from gantricks.run import folder`
            # is gantricks.run.folder; `from gantricks import X` (a name) is gantricks.
            for t in targets:
                if t in files and t != name:
                    deps.add(t)
                    break
        graph[name] = deps
    return graph


def test_the_core_has_no_import_cycle():
    graph = _import_graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_core_module_is_past_400_lines_and_the_core_imports_no_plugin():
    for path in (ROOT / "gantricks").rglob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path
        assert "gantricks_plugins" not in _gantricks_imports(path), path


# --------------------------------------------------------- interfaces of the contract
@pytest.mark.parametrize(
    ("plugins", "options"),
    [
        ([], {}),
        (["virtual_batchnorm"], {"virtual_batchnorm": {"discriminator": True}}),
        (["minibatch", "feature_matching", "historical_averaging"], {}),
        (["labels", "minibatch"], {"model": "improved-gan-mlp"}),
        (["labels", "minibatch"], {"model": "improved-gan"}),
        (["labels"], {}),
        ([str(ROOT / "examples" / "ema_generator.py")], {}),
    ],
    ids=["dcgan", "vbn", "tricks", "mlp-labels-mb", "igan-labels-mb", "labels", "ema"],
)
def test_every_model_satisfies_the_player_interfaces(tiny, plugins, options):
    trainer, _ = prepare({**tiny, **options}, plugins=[*QUIET, *plugins])
    assert isinstance(trainer, TrainerAPI)
    for g in (trainer.generator, trainer.sampling_generator):
        assert isinstance(g, GeneratorLike)
        z = trainer.sample_z(3)
        x = g(z)
        assert x.shape == (3, g.channels, g.image_size, g.image_size)
        assert z.shape == (3, g.nz) and x.abs().max() <= 1.0
    d = trainer.discriminator
    assert isinstance(d, DiscriminatorLike)
    logits, features = d(x)
    assert logits.shape == (3, 1) and features.shape == (3, d.feature_dim)


# ---------------------------------------------------------------- mistakes caught
MISSPELT = """
from gantricks import hookimpl

@hookimpl
def gantricks_discriminator_los(terms):
    terms["x"] = 0.0
"""


def test_a_misspelt_hook_stops_the_run_before_it_starts(tmp_path):
    (tmp_path / "typo.py").write_text(MISSPELT)
    run = _gantricks("train", "--plugins", "./typo.py", "--steps", "2", cwd=tmp_path)
    assert run.returncode == 2
    assert "gantricks: error: plugin 'typo' defines gantricks_discriminator_los, which is " in (
        run.stderr
    )
    assert "did you mean gantricks_discriminator_loss?" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "runs").exists()


def test_a_hook_without_hookimpl_is_refused(tiny):
    class Unmarked:
        def gantricks_generator_loss(self, terms):
            terms["x"] = 0.0

    with pytest.raises(GantricksError, match="defines gantricks_generator_loss without @hookimpl"):
        prepare(tiny, plugins=QUIET, extra_plugins=[(Unmarked(), "unmarked")])


CRASHING = """
from pydantic import Field
from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    fail_at: int = Field(0, description="raise at the end of this step (0: never)")


class Crash(Plugin):
    Config = Config

    @hookimpl
    def gantricks_step_end(self, step):
        if step == self.config.fail_at:
            raise ValueError(f"boom at step {step}")
"""


def test_a_crashing_plugin_keeps_the_run_and_it_resumes_exactly(tmp_path):
    (tmp_path / "crash.py").write_text(CRASHING)
    common = ["--steps", "10", "--log-every", "5", "--device", "cpu", "--out-dir", "runs"]
    common += ["--set", "ngf=8", "ndf=8", "nz=16", "batch_size=16"]
    plugins = ["--plugins", f"{QUIET_CLI},./crash.py"]
    run = _gantricks(
        "train", *common, *plugins, "--name", "a", "--set", "crash.fail_at=7", cwd=tmp_path
    )
    assert run.returncode == 3, run.stderr
    assert "plugin 'crash' failed in hook gantricks_step_end: ValueError: boom at step 7" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr and "--traceback" in run.stderr
    assert f"saved {Path('runs') / 'a' / 'checkpoints' / 'last.pt'} at step 7 after the error" in (
        run.stdout
    )
    # The traceback on demand, by flag or environment.
    again = _gantricks(
        "--traceback", "train", *common, *plugins, "--name", "b", "--set", "crash.fail_at=3",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 3 and "Traceback (most recent call last)" in again.stderr
    assert 'raise ValueError(f"boom at step {step}")' in again.stderr
    env = _gantricks(
        "train", *common, *plugins, "--name", "c", "--set", "crash.fail_at=3",
        cwd=tmp_path, env={"GANTRICKS_TRACEBACK": "1"},
    )  # fmt: skip
    assert env.returncode == 3 and "Traceback (most recent call last)" in env.stderr

    resumed = _gantricks("train", "--resume", "runs/a", "--set", "crash.fail_at=0", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    straight = _gantricks("train", *common, *plugins, "--name", "straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    a = torch.load(tmp_path / "runs/a/checkpoints/last.pt", weights_only=True)
    s = torch.load(tmp_path / "runs/straight/checkpoints/last.pt", weights_only=True)
    assert a["step"] == s["step"] == 10
    for part in ("generator", "discriminator"):
        for k, v in s[part].items():
            assert torch.equal(a[part][k], v), (part, k)


STATEFUL = """
import torch
from gantricks import Plugin, hookimpl

class Stateful(Plugin):
    state_attributes = ("seen",)

    def __init__(self, config=None):
        super().__init__(config)
        self.seen = torch.zeros(())

    @hookimpl
    def gantricks_after_generator_step(self):
        self.seen += 1
"""


def test_a_file_plugin_resumes_from_another_working_folder(tmp_path):
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    (first / "stateful.py").write_text(STATEFUL)
    args = ["--plugins", f"{QUIET_CLI},./stateful.py", "--device", "cpu", "--set", "ngf=8"]
    run = _gantricks("train", *args, "--steps", "3", "--out-dir", "runs", "--name", "r", cwd=first)
    assert run.returncode == 0, run.stderr
    config = json.loads((first / "runs/r/config.json").read_text())
    assert str(first / "stateful.py") in config["plugins"]
    resumed = _gantricks("train", "--resume", str(first / "runs/r"), "--steps", "5", cwd=other)
    assert resumed.returncode == 0, resumed.stderr
    ckpt = torch.load(first / "runs/r/checkpoints/last.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["plugins"]["stateful"]["seen"].item() == 5


# ------------------------------------------------------------ what plugins are given
class Probe(Plugin):
    """Records what it was given, and logs a device tensor from a step hook."""

    graph_safe = True

    @hookimpl
    def gantricks_train_start(self, trainer):
        self.total_steps = trainer.total_steps
        self.steps_per_epoch = trainer.steps_per_epoch

    @hookimpl
    def gantricks_step_start(self, trainer, step):
        self.starts = [*getattr(self, "starts", []), step]

    @hookimpl
    def gantricks_generator_loss(self, terms):
        self.log("probe/adv", terms["adv"].detach())

    @hookimpl
    def gantricks_step_end(self, step):
        if self.every(2, step):
            self.log("probe/even", float(step))


def test_plugins_get_the_run_length_steps_and_a_log(tiny):
    probe = Probe()
    trainer, _ = prepare(
        {**tiny, "steps": None, "epochs": 0.01, "log_every": 2},
        plugins=[*QUIET, "no:checkpoint", "no:samples"],
        extra_plugins=[(probe, "probe")],
    )
    trainer.fit()
    per_epoch = 60_000 // 16
    assert probe.steps_per_epoch == per_epoch
    assert probe.total_steps == math.ceil(0.01 * per_epoch) == trainer.step
    assert probe.starts == list(range(trainer.step))
    rows = [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["probe/even"] for r in rows] == [float(r["step"]) for r in rows]
    assert all(r["probe/adv"] == pytest.approx(r["loss_g/adv"], rel=0.5) for r in rows)


def test_every():
    assert [s for s in range(1, 10) if Plugin.every(3, s)] == [3, 6, 9]
    assert not any(Plugin.every(0, s) for s in range(1, 10))


def test_a_plugin_class_needs_no_init_and_gets_its_options():
    class WeightedConfig(PluginConfig):
        weight: float = 2.0

    class Weighted(Plugin):
        Config = WeightedConfig

    assert Weighted().config.weight == 2.0
    with pytest.raises(Exception, match="weight"):
        WeightedConfig(weight="heavy")


def test_state_attributes_survive_a_resume(tiny, tmp_path):
    path = tmp_path / "stateful.py"
    path.write_text(STATEFUL)
    half, _ = prepare({**tiny, "steps": 3}, plugins=[*QUIET, str(path)])
    half.fit()
    resumed, ckpt = prepare({"steps": 6}, resume=half.run_dir)
    resumed.fit(resume=ckpt)
    assert resumed.plugins.plugins["stateful"].obj.seen.item() == 6


# ------------------------------------------------------------------------ ordering
def test_the_ordering_conventions_hold_for_the_built_ins(tiny):
    trainer, _ = prepare(
        {**tiny, "virtual_batchnorm": {"discriminator": True}},
        plugins=["historical_averaging", "minibatch", "virtual_batchnorm"],
    )
    start = call_order(trainer.plugins, "gantricks_train_start")
    assert start[0] == "virtual_batchnorm"
    assert start[-2:] == ["gantricks:data_init", "historical_averaging"]
    assert call_order(trainer.plugins, "gantricks_train_end")[0] == "checkpoint"
    assert call_order(trainer.plugins, "gantricks_step_end")[-1] == "checkpoint"
    # Otherwise the plugin listed later runs first, and users' plugins before the defaults.
    build = call_order(trainer.plugins, "gantricks_build_models")
    assert build == ["virtual_batchnorm", "minibatch"]
    ssl, _ = prepare(tiny, plugins=["labels", "feature_matching"])
    assert call_order(ssl.plugins, "gantricks_train_end")[0] == "checkpoint"
    assert call_order(ssl.plugins, "gantricks_train_end")[-1] == "labels"


def test_the_later_listed_plugin_decides_a_firstresult_hook(tiny):
    class Targets(Plugin):
        def __init__(self, value):
            super().__init__()
            self.value = value

        @hookimpl
        def gantricks_discriminator_targets(self):
            return self.value, 0.0

    trainer, _ = prepare(
        tiny, plugins=QUIET, extra_plugins=[(Targets(0.7), "first"), (Targets(0.8), "second")]
    )
    assert call_order(trainer.plugins, "gantricks_discriminator_targets") == ["second", "first"]
    assert trainer.hook.gantricks_discriminator_targets(trainer=trainer, batch=None) == (0.8, 0.0)


# ----------------------------------------------------------------------- the docs
def test_the_readme_hook_table_is_generated_from_hookspecs():
    from gantricks.hookspecs import hook_table

    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- hooks: generated by `gantricks plugins --hooks` -->")
    end = readme.index("<!-- /hooks -->")
    assert readme[start:end].split("\n", 1)[1].strip() == hook_table().strip()


def test_writing_a_plugin_page_shows_every_example():
    page = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    for example in sorted((ROOT / "examples").glob("*.py")):
        assert f"examples/{example.name}" in page, example.name


def test_train_help_and_readme_document_the_exit_status():
    readme = (ROOT / "README.md").read_text()
    assert "3 when a plugin raised an exception" in readme
    assert textwrap.dedent("GANTRICKS_TRACEBACK=1") in readme


def test_the_readme_plugin_runs_as_written(tiny, tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Writing a plugin") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("\n```\n", start)]
    (tmp_path / "logit_penalty.py").write_text(code)
    spy = SeenFakeLogits()
    trainer, _ = prepare(
        {**tiny, "steps": 1, "log_every": 1, "logit_penalty": {"weight": 0.5}},
        plugins=[*QUIET, str(tmp_path / "logit_penalty.py")],
        extra_plugins=[(spy, "spy")],
    )
    scalars = trainer.fit()
    assert scalars["loss_d/logit_penalty"] == pytest.approx(spy.expected, rel=1e-5)


class SeenFakeLogits(Plugin):
    @hookimpl
    def gantricks_discriminator_loss(self, batch):
        self.expected = 0.5 * batch.fake_logits.detach().square().mean().item()
