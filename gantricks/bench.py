"""``gantricks bench``: every trick combination × seed, trained, scored and tabulated.

Each run is an ordinary run folder under ``OUT/runs/<combo>-seed<k>`` with its own
``result.json``; a bench that is interrupted and started again skips the runs whose result
says ``ok`` and retries the others. A run that fails is recorded with its error and does not
stop the rest. The tables report, per combination, the mean and the standard deviation over
seeds (sample standard deviation, n − 1) of each metric's headline number.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import re
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gantricks.checkpoint import atomic_write_text
from gantricks.config import load_toml
from gantricks.errors import GantricksError

TRICKS = (
    "feature_matching",
    "minibatch",
    "historical_averaging",
    "label_smooth",
    "virtual_batchnorm",
)
#: Headline number of each metric in a result, and whether higher is better.
HEADLINES = {
    "classifier_score": True,
    "classes_covered": True,
    "kl_to_uniform": False,
    "modes_covered": True,
    "is": True,
    "fid": False,
    "kid": False,
}
OFF = ["no:progress", "no:tensorboard", "no:samples"]


@dataclass
class Combo:
    """A named set of plugins with their options."""

    name: str
    plugins: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return (
            re.sub(
                r"[^A-Za-z0-9_.-]+", "_", self.name.replace("+", "plus_").replace(",", "+")
            ).strip("_")
            or "none"
        )


def _plugins_of(text: str) -> list[str]:
    text = text.strip()
    if text in ("", "none"):
        return []
    if text == "all":
        return list(TRICKS)
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_combos(text: str) -> list[Combo]:
    """``"none; minibatch; minibatch,label_smooth; all"`` -> combos, named as written."""
    combos = [Combo(part.strip(), _plugins_of(part)) for part in text.split(";") if part.strip()]
    if not combos:
        raise GantricksError(f"--combos {text!r} names no combination; separate them with ';'")
    return combos


def load_combo_file(path: str | Path) -> list[Combo]:
    """TOML: ``[[combo]]`` tables with ``name``, ``plugins`` (list) and optional ``options``
    (plugin option tables, e.g. ``options.minibatch.kernels = 50``)."""
    data = load_toml(path)
    raw = data.get("combo")
    if not isinstance(raw, list) or not raw:
        raise GantricksError(f"combo file {str(path)!r} has no [[combo]] tables")
    combos = []
    for i, entry in enumerate(raw):
        unknown = set(entry) - {"name", "plugins", "options"}
        if unknown or "plugins" not in entry:
            raise GantricksError(
                f"combo file {str(path)!r}, combo #{i + 1}: keys must be name, plugins, options "
                f"(got {', '.join(sorted(entry))})"
            )
        plugins = entry["plugins"]
        plugins = _plugins_of(plugins) if isinstance(plugins, str) else list(plugins)
        combos.append(
            Combo(entry.get("name", ",".join(plugins) or "none"), plugins, entry.get("options", {}))
        )
    return combos


def ablation_combos() -> list[Combo]:
    """Leave one out over the five tricks: all five, then all minus each one. Not the
    paper's table 3 (its "all" has no historical averaging and its −L rows take labels
    away); that table's rows are ``benchmarks/configs/cifar10_ablation.toml``."""
    out = [Combo("all", list(TRICKS))]
    out += [Combo(f"all - {t}", [x for x in TRICKS if x != t]) for t in TRICKS]
    return out


@dataclass
class BenchSpec:
    combos: list[Combo]
    seeds: int
    base: dict[str, Any]
    metrics: list[str]
    out: Path
    num_samples: int = 5000
    eval_every: int = 0
    inception_weights: str | None = None
    jobs: int = 1
    command: str = ""


def check_unique(combos: list[Combo]) -> None:
    """Two combos with one name (or one run-folder name) would share runs and rows."""
    for what, key in (("name", lambda c: c.name), ("run-folder name", lambda c: c.slug)):
        seen: dict[str, Combo] = {}
        for c in combos:
            other = seen.setdefault(key(c), c)
            if other is not c:
                raise GantricksError(
                    f"combos {other.name!r} and {c.name!r} have the same {what} "
                    f"{key(c)!r}, so their runs would overwrite each other; give each combo "
                    "its own name (a combo file's `name = ...`)"
                )


def check_combos(spec: BenchSpec) -> None:
    """Every combo's plugins load and its options validate, before anything trains: a
    typo found at its combo's turn would cost all the runs before it."""
    from gantricks.config import validate_core
    from gantricks.plugin_manager import PluginManager, resolve_specs
    from gantricks.run import split_options

    check_unique(spec.combos)
    for combo in spec.combos:
        core, plugin_opts = split_options({**spec.base, **combo.options})
        plugin_opts["eval"] = _eval_options(spec)
        try:
            config = validate_core(core)
            pm = PluginManager()
            pm.load(resolve_specs([*OFF, *combo.plugins]), plugin_opts)
            pm.hook.gantricks_configure(config=config)  # checks across options, e.g. metrics
        except GantricksError as e:
            raise GantricksError(f"combo {combo.name!r}: {e}") from None


def settings_of(spec: BenchSpec, combo: Combo) -> dict[str, Any]:
    """What a run's result depends on besides its seed, stored in its result.json: a bench
    started again reuses a finished run only if these are the same."""
    settings = {
        "plugins": combo.plugins,
        "options": combo.options,
        "base": spec.base,
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
        "eval_every": spec.eval_every,
        "inception_weights": spec.inception_weights,
    }
    return json.loads(json.dumps(settings, default=str))  # as it reads back from JSON


def _eval_options(spec: BenchSpec) -> dict[str, Any]:
    """The eval plugin's options for every run: scored at the end and, for the curves,
    every ``eval_every`` steps (default: a fifth of the run)."""
    steps = int(spec.base.get("steps") or 0)
    return {
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
        "every": spec.eval_every or (max(steps // 5, 1) if steps else 0),
        "inception_weights": spec.inception_weights,
    }


def _run_one(spec: BenchSpec, combo: Combo, seed: int) -> dict[str, Any]:
    """Train and score one (combo, seed); never raises: failures are results too."""
    from gantricks.run import prepare

    name = f"{combo.slug}-seed{seed}"
    run_dir = spec.out / "runs" / name
    start = time.time()
    record: dict[str, Any] = {
        "combo": combo.name,
        "plugins": combo.plugins,
        "seed": seed,
        "run": str(run_dir),
        "settings": settings_of(spec, combo),
    }
    try:
        eval_opts = _eval_options(spec)
        opts = {
            **spec.base,
            **combo.options,
            "seed": seed,
            "name": name,
            "out_dir": str(spec.out / "runs"),
            "eval": eval_opts,
        }
        if run_dir.exists():  # a half-finished earlier attempt: start it afresh
            import shutil

            shutil.rmtree(run_dir)
        trainer, _ = prepare(opts, plugins=[*OFF, *combo.plugins])
        scalars = trainer.fit()
        final = json.loads((run_dir / "eval" / f"step_{trainer.step:07d}.json").read_text())
        record.update(
            status="ok",
            step=trainer.step,
            metrics=_headlines(final),
            loss_d=scalars.get("loss_d"),
            loss_g=scalars.get("loss_g"),
        )
    except Exception as e:  # a failed run is recorded and the bench goes on
        record.update(
            status="failed",
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(limit=5),
        )
    record["seconds"] = round(time.time() - start, 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Atomic: an interrupted bench must never leave a half-written "finished" marker.
    atomic_write_text(run_dir / "result.json", json.dumps(record, indent=2) + "\n")
    return record


def _headlines(result: dict[str, Any]) -> dict[str, float]:
    m = result["metrics"]
    out: dict[str, float] = {}
    if "is" in m:
        out["is"] = m["is"]["mean"]
    if "fid" in m:
        out["fid"] = m["fid"]["value"]
    if "kid" in m:
        out["kid"] = m["kid"]["mean"]
    for key in ("classifier_score", "classes_covered", "kl_to_uniform", "modes_covered"):
        if key in m.get("classifier", {}):
            out[key] = float(m["classifier"][key])
    return out


def _finished(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The run's result if it finished with these settings; None if it is still to do.
    A finished run made with other settings is an error: rerunning it would replace a
    result the user may want, and reusing it would report what this command did not run."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("status") != "ok":
        return None
    saved = record.get("settings")
    if saved is None:  # written before results recorded their settings
        print(f"bench: {run_dir.name}: settings not recorded (an older bench); reused", flush=True)
        return record
    if saved != settings:
        keys = sorted({*saved, *settings})
        changed = ", ".join(k for k in keys if saved.get(k) != settings.get(k))
        raise GantricksError(
            f"{run_dir} holds a finished run made with other settings (differing: "
            f"{changed}); its scores are not this command's. Use another --out, or delete "
            "that folder's runs to run them again."
        )
    return record


def run_bench(spec: BenchSpec) -> list[dict[str, Any]]:
    """Train and score every (combo, seed), skipping finished ones; write the reports."""
    check_combos(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    todo, records = [], {}
    for combo in spec.combos:
        settings = settings_of(spec, combo)
        for seed in range(spec.seeds):
            done = _finished(spec.out / "runs" / f"{combo.slug}-seed{seed}", settings)
            if done is not None:
                records[(combo.name, seed)] = {**done, "skipped": True}
            else:
                todo.append((combo, seed))
    total = len(spec.combos) * spec.seeds
    print(
        f"bench: {total} runs ({len(records)} already finished, {len(todo)} to do) in {spec.out}",
        flush=True,
    )
    if spec.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=spec.jobs) as pool:
            futures = {pool.submit(_run_one, spec, c, s): (c, s) for c, s in todo}
            for fut, (c, s) in futures.items():
                records[(c.name, s)] = _report(fut.result(), len(records), total)
    else:
        for c, s in todo:
            records[(c.name, s)] = _report(_run_one(spec, c, s), len(records), total)
    ordered = [records[(c.name, s)] for c in spec.combos for s in range(spec.seeds)]
    write_reports(spec, ordered)
    return ordered


def _report(record: dict[str, Any], done: int, total: int) -> dict[str, Any]:
    if record["status"] == "ok":
        shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items())
        print(
            f"[{done + 1}/{total}] {record['combo']} seed {record['seed']}: {shown} "
            f"({record['seconds']:.0f} s)",
            flush=True,
        )
    else:
        print(
            f"[{done + 1}/{total}] {record['combo']} seed {record['seed']} FAILED: "
            f"{record['error']}",
            flush=True,
        )
    return record


def summarise(records: list[dict[str, Any]], combos: list[Combo]) -> list[dict[str, Any]]:
    """Per combo: n ok runs, and mean / sample std over seeds of each headline metric."""
    rows = []
    for combo in combos:
        ok = [r for r in records if r["combo"] == combo.name and r["status"] == "ok"]
        row: dict[str, Any] = {
            "combo": combo.name,
            "runs": len(ok),
            "failed": sum(r["combo"] == combo.name and r["status"] != "ok" for r in records),
        }
        keys = sorted({k for r in ok for k in r["metrics"]})
        for k in keys:
            values = [r["metrics"][k] for r in ok if k in r["metrics"]]
            row[k] = statistics.fmean(values)
            row[f"{k}_std"] = statistics.stdev(values) if len(values) > 1 else float("nan")
        rows.append(row)
    return rows


def write_reports(spec: BenchSpec, records: list[dict[str, Any]]) -> None:
    out = spec.out
    summary = summarise(records, spec.combos)
    metric_keys = sorted({k for r in records if r["status"] == "ok" for k in r["metrics"]})
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["combo", "seed", "status", *metric_keys, "loss_d", "loss_g", "seconds", "error", "run"]
        )
        for r in records:
            m = r.get("metrics", {})
            w.writerow(
                [
                    r["combo"],
                    r["seed"],
                    r["status"],
                    *[m.get(k, "") for k in metric_keys],
                    r.get("loss_d", ""),
                    r.get("loss_g", ""),
                    r.get("seconds", ""),
                    r.get("error", ""),
                    r["run"],
                ]
            )
    versions = _versions()
    meta = {
        "command": spec.command,
        "versions": versions,
        "seeds": spec.seeds,
        "base": spec.base,
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
    }
    (out / "results.json").write_text(
        json.dumps(
            {
                **meta,
                "combos": [asdict(c) for c in spec.combos],
                "summary": summary,
                "runs": [{k: v for k, v in r.items() if k != "traceback"} for r in records],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    (out / "results.md").write_text(_markdown(meta, summary, metric_keys))
    try:
        _plot(spec, records, summary, metric_keys, out / "results.png")
    except ImportError:
        print("bench: matplotlib is not installed; skipping results.png", file=sys.stderr)


def _versions() -> dict[str, str]:
    import torch

    from gantricks import __version__

    return {
        "gantricks": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown(meta: dict[str, Any], summary: list[dict[str, Any]], keys: list[str]) -> str:
    v = meta["versions"]
    lines = [
        "# gantricks bench",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"gantricks {v['gantricks']}, torch {v['torch']}, Python {v['python']}, "
        f"{v['device']} ({v['machine']}). {meta['seeds']} seed(s) per combination; "
        f"mean ± sample std (n − 1) over seeds; scores on {meta['num_samples']} samples "
        "at the last step. **Bold**: best mean of each column.",
        "",
    ]
    best = {}
    for k in keys:
        values = [(r[k], r["combo"]) for r in summary if k in r]
        if values:
            pick = max if HEADLINES.get(k, True) else min
            best[k] = pick(values)[1]
    arrows = {k: ("↑" if HEADLINES.get(k, True) else "↓") for k in keys}
    lines.append("| combination | runs | " + " | ".join(f"{k} {arrows[k]}" for k in keys) + " |")
    lines.append("|---|---|" + "---|" * len(keys))
    for r in summary:
        cells = []
        for k in keys:
            if k not in r:
                cells.append("—")
                continue
            cell = _fmt(r[k], r[f"{k}_std"])
            cells.append(f"**{cell}**" if best.get(k) == r["combo"] else cell)
        runs = f"{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        lines.append(f"| {r['combo']} | {runs} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(
    spec: BenchSpec,
    records: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    keys: list[str],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not keys:
        return
    key = keys[0] if "classifier_score" not in keys else "classifier_score"
    if "modes_covered" in keys:
        key = "modes_covered"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["combo"] for r in summary if key in r]
    means = [r[key] for r in summary if key in r]
    stds = [0.0 if math.isnan(r[f"{key}_std"]) else r[f"{key}_std"] for r in summary if key in r]
    ax1.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
    ax1.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax1.set_ylabel(key)
    ax1.set_title(f"{key} at the last step (mean ± std over seeds)")
    for combo in spec.combos:
        curves = []
        for r in records:
            if r["combo"] != combo.name or r["status"] != "ok":
                continue
            curve = {}
            for f in sorted((Path(r["run"]) / "eval").glob("step_*.json")):
                result = json.loads(f.read_text())
                value = _headlines(result).get(key)
                if value is not None:
                    curve[int(result["step"])] = value
            curves.append(curve)
        steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if steps:
            ax2.plot(
                steps,
                [statistics.fmean(c[s] for c in curves) for s in steps],
                marker="o",
                label=combo.name,
            )
    ax2.set_xlabel("step")
    ax2.set_ylabel(key)
    ax2.set_title(f"{key} during training (mean over seeds)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
