"""Do two source trees of gantricks train the same weights? A check for refactors.

    python benchmarks/same_results.py --old ../gantricks-old --new . [--steps 12]

Trains the same short CPU runs (glyphs, small widths, several plugin sets) once with each
tree, in separate processes (``PYTHONPATH`` points at the tree, and ``gantricks_plugins`` at
its ``plugins/``), and compares the final checkpoints' generator, discriminator and
optimiser states bit for bit, and the logged losses of every log step. Prints one line per
plugin set and exits 1 if any differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGIN_SETS = {
    "none": [],
    "feature_matching": ["feature_matching"],
    "minibatch": ["minibatch"],
    "historical_averaging": ["historical_averaging"],
    "label_smooth": ["label_smooth"],
    "virtual_batchnorm": ["virtual_batchnorm"],
    "all five": [
        "feature_matching",
        "minibatch",
        "historical_averaging",
        "label_smooth",
        "virtual_batchnorm",
    ],
    "semi_supervised": ["semi_supervised", "feature_matching"],
}
QUIET = ["no:progress", "no:tensorboard", "no:eval", "no:samples"]

RUN = """
import json, sys, torch
from gantricks.run import prepare
opts, plugins = json.loads(sys.argv[1]), json.loads(sys.argv[2])
trainer, _ = prepare(opts, plugins=plugins)
trainer.fit()
"""


def _tree_env(tree: Path, scratch: Path) -> dict[str, str]:
    shim = scratch / f"shim-{tree.name}-{abs(hash(str(tree)))}"
    shim.mkdir(parents=True, exist_ok=True)
    link = shim / "gantricks_plugins"
    if not link.exists():
        link.symlink_to(tree.resolve() / "plugins")
    return {**os.environ, "PYTHONPATH": f"{tree.resolve()}{os.pathsep}{shim}"}


def _train(tree: Path, out: Path, name: str, plugins: list[str], steps: int, scratch: Path):
    opts = {
        "out_dir": str(out),
        "name": name,
        "dataset": "glyphs",
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "batch_size": 32,
        "steps": steps,
        "log_every": 3,
        "device": "cpu",
        "seed": 1,
        "semi_supervised": {"eval_every": 0},
    }
    if "semi_supervised" not in plugins:
        del opts["semi_supervised"]
    subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(opts), json.dumps([*QUIET, *plugins])],
        env=_tree_env(tree, scratch),
        cwd=scratch,
        check=True,
        capture_output=True,
        text=True,
    )
    return out / name


def _compare(a: Path, b: Path) -> list[str]:
    import torch

    ca = torch.load(a / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)
    diffs = []
    for part in ("generator", "discriminator"):
        for key, value in ca[part].items():
            if not torch.equal(value, cb[part][key]):
                diffs.append(f"{part}.{key}")
    for part in ("opt_g", "opt_d"):
        for idx, state in ca[part]["state"].items():
            for k, v in state.items():
                if not torch.equal(v, cb[part]["state"][idx][k]):
                    diffs.append(f"{part}.state.{idx}.{k}")
    la = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(la, lb, strict=True):
        for key, value in ra.items():
            if key.startswith("loss") and rb.get(key) != value:
                diffs.append(f"step {ra['step']} {key}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", type=Path, required=True, help="source tree before the change")
    p.add_argument("--new", type=Path, default=Path("."), help="source tree after it")
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="gantricks-same-"))
    failed = 0
    for name, plugins in PLUGIN_SETS.items():
        slug = name.replace(" ", "_")
        a = _train(args.old, scratch / "old", slug, plugins, args.steps, scratch)
        b = _train(args.new, scratch / "new", slug, plugins, args.steps, scratch)
        diffs = _compare(a, b)
        failed += bool(diffs)
        verdict = "identical" if not diffs else f"DIFFERENT: {', '.join(diffs[:5])}"
        print(f"{name:22s} {args.steps} steps: {verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
