"""A bench's reports: ``results.csv`` (one row per run), ``results.json``, ``results.md``,
``results.png`` and TensorBoard HParams, with every combination compared with the baseline
(:mod:`gantricks.bench.stats`). :func:`report_again` rebuilds them from a ``results.json``
alone, without the run folders (``gantricks bench --report-only``)."""

from __future__ import annotations

import csv
import json
import math
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from gantricks.bench import stats
from gantricks.bench.combos import Combo
from gantricks.bench.spec import HEADLINES, BenchSpec
from gantricks.checkpoint import atomic_write_text
from gantricks.errors import GantricksError

#: Per metric, the comparison's columns in results.csv, after the run's own.
COMPARISON_COLUMNS = ("diff", "ci_low", "ci_high", "p", "p_holm", "verdict")


def summarise(records: list[dict[str, Any]], combos: list[Combo]) -> list[dict[str, Any]]:
    """Per combo: n ok runs, and mean, sample std (n − 1) and the 95 % t interval of the
    mean over seeds of each headline metric (None where n is too small)."""
    rows = []
    for combo in combos:
        ok = [r for r in records if r["combo"] == combo.name and r["status"] == "ok"]
        row: dict[str, Any] = {
            "combo": combo.name,
            "runs": len(ok),
            "failed": sum(r["combo"] == combo.name and r["status"] == "failed" for r in records),
        }
        for k in sorted({k for r in ok for k in r["metrics"]}):
            values = [v for r in ok if math.isfinite(v := r["metrics"].get(k, math.nan))]
            if not values:
                continue
            ci = stats.mean_ci(values)
            row[k] = statistics.fmean(values)
            row[f"{k}_std"] = statistics.stdev(values) if len(values) > 1 else None
            row[f"{k}_ci_low"], row[f"{k}_ci_high"] = ci if ci else (None, None)
        rows.append(row)
    return rows


def comparisons(
    records: list[dict[str, Any]], combos: list[Combo], baseline: str
) -> list[stats.Comparison]:
    scores: dict[str, dict[str, list[float]]] = {c.name: {} for c in combos}
    for r in records:
        if r["status"] == "ok" and r["combo"] in scores:
            for k, v in r["metrics"].items():
                scores[r["combo"]].setdefault(k, []).append(v)
    return stats.compare_all(scores, baseline, HEADLINES)


def versions(records: list[dict[str, Any]]) -> dict[str, str]:
    """Software of this process; the devices the runs reported (this process may never
    have touched the GPU the runs used)."""
    import scipy
    import torch

    from gantricks import __version__

    devices = sorted({r["worker"]["device"] for r in records if r.get("worker", {}).get("device")})
    return {
        "gantricks": __version__,
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": ", ".join(devices) or "cpu",
    }


def meta_of(spec: BenchSpec, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": spec.command,
        "versions": versions(records),
        "seeds": spec.seeds,
        "base": spec.base,
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
    }


def write_reports(spec: BenchSpec, records: list[dict[str, Any]]) -> None:
    write_all(spec.out, meta_of(spec, records), spec.combos, records, spec.baseline_name())


def write_all(
    out: Path,
    meta: dict[str, Any],
    combos: list[Combo],
    records: list[dict[str, Any]],
    baseline: str,
    hparams: bool = True,
) -> None:
    """Every report of a bench from its runs' records."""
    summary = summarise(records, combos)
    compared = comparisons(records, combos, baseline)
    keys = sorted({k for r in records if r["status"] == "ok" for k in r["metrics"]})
    _write_csv(out / "results.csv", records, keys, compared)
    doc = {
        **meta,
        "baseline": baseline,
        "statistics": {"method": stats.METHOD, "alpha": stats.ALPHA, "confidence": 0.95},
        "combos": [{"name": c.name, "plugins": c.plugins, "options": c.options} for c in combos],
        "summary": summary,
        "comparisons": [c.as_dict() for c in compared],
        "runs": [{k: v for k, v in r.items() if k != "traceback"} for r in records],
    }
    text = json.dumps(_finite(doc), indent=2, default=str, allow_nan=False) + "\n"
    atomic_write_text(out / "results.json", text)
    atomic_write_text(out / "results.md", markdown(meta, summary, compared, keys, baseline))
    try:
        from gantricks.bench.plot import plot

        plot(records, summary, compared, combos, keys, out / "results.png")
    except ImportError:
        print("bench: matplotlib is not installed; skipping results.png", file=sys.stderr)
    if hparams:
        from gantricks.bench.hparams import write_hparams

        write_hparams(out / "tensorboard", records, combos, meta)


def _finite(value: Any) -> Any:
    """NaN and infinities as None: results.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_csv(
    path: Path, records: list[dict[str, Any]], keys: list[str], compared: list[stats.Comparison]
) -> None:
    """One row per run; then, per metric, its combination's comparison with the baseline
    (the same on every run of a combination)."""
    by = {(c.combo, c.metric): c for c in compared}
    extra = [f"{k}_{col}" for k in keys for col in COMPARISON_COLUMNS]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        run_columns = ["combo", "seed", "status", *keys, "loss_d", "loss_g", "seconds", "error"]
        w.writerow([*run_columns, "run", *extra])
        for r in records:
            m = r.get("metrics", {})
            cells = []
            for k in keys:
                c = by.get((r["combo"], k))
                d = c.as_dict() if c else {}
                cells += ["" if d.get(col) is None else d[col] for col in COMPARISON_COLUMNS]
            w.writerow(
                [
                    r["combo"],
                    r["seed"],
                    r["status"],
                    *[m.get(k, "") for k in keys],
                    r.get("loss_d", ""),
                    r.get("loss_g", ""),
                    r.get("seconds", ""),
                    r.get("error", ""),
                    r["run"],
                    *cells,
                ]
            )


def num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.1 else f"{x:.3g}"


def pval(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.01 else f"{p:.1e}"


def markdown(
    meta: dict[str, Any],
    summary: list[dict[str, Any]],
    compared: list[stats.Comparison],
    keys: list[str],
    baseline: str,
) -> str:
    v = meta["versions"]
    lines = ["# gantricks bench", "", "```", meta["command"], "```", ""]
    if meta.get("report"):
        lines += [f"Reported again, from the stored per-run scores: `{meta['report']}`.", ""]
    ran = sum(r["runs"] for r in summary)
    total = meta["seeds"] * len(summary)
    lines += [
        f"gantricks {v['gantricks']}, torch {v['torch']}, Python {v['python']}, "
        + (f"scipy {v['scipy']}, " if "scipy" in v else "")
        + f"{v['device']} ({v['machine']}). {meta['seeds']} seed(s) per combination; "
        f"mean ± sample std (n − 1) over seeds; scores on {meta['num_samples']} samples "
        "at the last step. **Bold**: best mean of each column."
        + ("" if ran == total else f" {ran} of {total} runs finished."),
        "",
    ]
    best = {}
    for k in keys:
        values = [(r[k], r["combo"]) for r in summary if k in r]
        if values:
            best[k] = (max if HEADLINES.get(k, True) else min)(values)[1]
    lines.append("| combination | runs | " + " | ".join(f"{k} {_arrow(k)}" for k in keys) + " |")
    lines.append("|---|---|" + "---|" * len(keys))
    for r in summary:
        cells = []
        for k in keys:
            if k not in r:
                cells.append("—")
                continue
            std = r[f"{k}_std"]
            cell = f"{r[k]:.3f}" if std is None else f"{r[k]:.3f} ± {std:.3f}"
            cells.append(f"**{cell}**" if best.get(k) == r["combo"] else cell)
        runs = f"{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        lines.append(f"| {r['combo']} | {runs} | " + " | ".join(cells) + " |")
    lines += ["", f"## Against the baseline, {baseline}", "", stats.METHOD + ".", ""]
    if not any(c.combo == baseline for c in compared):
        lines += [f"The baseline {baseline} has no finished run: nothing to compare.", ""]
        return "\n".join(lines)
    for k in keys:
        lines += [
            f"### {k} {_arrow(k)}",
            "",
            f"| combination | n | mean | difference from {baseline} [95 % CI] | p (Welch) "
            "| p (Holm) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in (c for c in compared if c.metric == k):
            if c.verdict == stats.BASELINE:
                lines.append(f"| {c.combo} | {c.n} | {num(c.mean)} | — | — | — | baseline |")
                continue
            diff = num(c.diff)
            if c.ci_low is not None and c.verdict not in (
                stats.SAME_NO_SPREAD,
                stats.DIFFERS_NO_SPREAD,
            ):
                diff += f" [{num(c.ci_low)}, {num(c.ci_high)}]"
            verdict = c.verdict
            if verdict in (stats.BETTER, stats.WORSE):
                verdict = f"**{verdict}**"
            lines.append(
                f"| {c.combo} | {c.n} | {num(c.mean)} | {diff} | {pval(c.p)} | "
                f"{pval(c.p_holm)} | {verdict} |"
            )
        lines.append("")
    return "\n".join(lines)


def _arrow(key: str) -> str:
    return "↑" if HEADLINES.get(key, True) else "↓"


def report_again(out: Path, baseline: str | None = None, command: str = "") -> Path:
    """Rebuild every report of the bench in ``out`` from its ``results.json`` (the runs'
    stored scores: the run folders are not needed), with the statistics of this version.
    Returns the markdown report's path."""
    path = out / "results.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise GantricksError(f"--report-only reads {path}: {e}") from None
    combos = [Combo(c["name"], c["plugins"], c.get("options", {})) for c in doc["combos"]]
    names = [c.name for c in combos]
    if baseline is None:
        baseline = doc.get("baseline") or ("none" if "none" in names else names[0])
    if baseline not in names:
        raise GantricksError(f"baseline {baseline!r} is not one of {', '.join(names)}")
    meta = {k: doc[k] for k in ("command", "versions", "seeds", "base", "metrics", "num_samples")}
    meta["versions"] = {"scipy": _scipy(), **meta["versions"]}
    meta["report"] = command or f"gantricks bench --report-only --out {out}"
    write_all(out, meta, combos, doc["runs"], baseline, hparams=False)
    return out / "results.md"


def _scipy() -> str:
    import scipy

    return scipy.__version__
