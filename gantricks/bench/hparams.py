"""TensorBoard HParams: every run of a bench in the HParams dashboard, its combination,
options and seed as hyperparameters and its headline scores as metrics.

``tensorboard --logdir OUT/tensorboard``. One folder per run (``OUT/tensorboard/<run>``),
rewritten with every report, so the dashboard shows each run once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from gantricks.bench.combos import TRICKS, Combo
from gantricks.bench.spec import run_name


def _flat(prefix: str, options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(f"{name}.", value))
        else:
            out[name] = value if isinstance(value, bool | int | float | str) else str(value)
    return out


def hyperparameters(combo: Combo, seed: int, meta: dict[str, Any]) -> dict[str, Any]:
    """A run's hyperparameters: combination, seed, each trick on (1) or off (0), the
    combination's plugin options and the bench's shared options."""
    hp: dict[str, Any] = {"combo": combo.name, "seed": seed}
    others = [p for p in combo.plugins if p not in TRICKS]
    hp.update({t: int(t in combo.plugins) for t in TRICKS})  # 1 on, 0 off: plots as numbers
    if others:
        hp["other_plugins"] = ",".join(others)
    hp.update(_flat("", {k: v for k, v in meta.get("base", {}).items() if k != "data_dir"}))
    hp.update(_flat("", combo.options))
    hp["num_samples"] = meta.get("num_samples")
    return {k: v for k, v in hp.items() if v is not None}


def write_hparams(
    folder: Path, records: list[dict[str, Any]], combos: list[Combo], meta: dict[str, Any]
) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    shutil.rmtree(folder, ignore_errors=True)
    by_name = {c.name: c for c in combos}
    names = [c.name for c in combos]
    metrics = sorted({k for r in records if r["status"] == "ok" for k in r["metrics"]})
    for r in records:
        combo = by_name.get(r["combo"])
        if r["status"] != "ok" or combo is None:
            continue
        hp = hyperparameters(combo, r["seed"], meta)
        scores = {f"bench/{k}": float(v) for k, v in r["metrics"].items()}
        # Every run declares every metric, so the dashboard's columns are the same for all.
        declared = {f"bench/{k}": scores.get(f"bench/{k}", 0.0) for k in metrics}
        exp, ssi, sei = hparams(hp, declared, hparam_domain_discrete={"combo": names})
        with SummaryWriter(str(folder / run_name(combo, r["seed"]))) as w:
            for summary in (exp, ssi, sei):
                w.file_writer.add_summary(summary)
            for tag, value in scores.items():
                w.add_scalar(tag, value, int(r.get("step") or 0))
