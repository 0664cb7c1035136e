"""``results.png``: each combination's mean score with its 95 % confidence interval,
coloured by the verdict against the baseline; beside it, the score during training."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from gantricks.bench import stats
from gantricks.bench.combos import Combo
from gantricks.bench.runs import curve

COLOURS = {
    stats.BASELINE: "#4c4c4c",
    stats.BETTER: "#2a9d4b",
    stats.WORSE: "#c0392b",
}
OTHER = "#4c72b0"


def headline_key(keys: list[str]) -> str:
    if "modes_covered" in keys:
        return "modes_covered"
    return "classifier_score" if "classifier_score" in keys else keys[0]


def _curves(records: list[dict[str, Any]], combo: Combo, key: str) -> list[dict[int, float]]:
    """Each ok run's scores over steps: stored in its record, else read from its folder."""
    out = []
    for r in records:
        if r["combo"] != combo.name or r["status"] != "ok":
            continue
        points = r.get("curve")
        if points is None and Path(r["run"]).is_dir():
            points = curve(Path(r["run"]))
        if points and key in points:
            out.append({int(s): v for s, v in points[key].items()})
    return out


def plot(
    records: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    compared: list[stats.Comparison],
    combos: list[Combo],
    keys: list[str],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not keys:
        return
    key = headline_key(keys)
    curves = {c.name: _curves(records, c, key) for c in combos}
    with_curves = any(curves.values())
    fig, axes = plt.subplots(1, 2 if with_curves else 1, figsize=(12 if with_curves else 7, 4.5))
    ax1 = axes[0] if with_curves else axes
    rows = [r for r in summary if key in r]
    verdicts = {c.combo: c.verdict for c in compared if c.metric == key}
    lows = [r[key] - r[f"{key}_ci_low"] if r[f"{key}_ci_low"] is not None else 0 for r in rows]
    highs = [r[f"{key}_ci_high"] - r[key] if r[f"{key}_ci_high"] is not None else 0 for r in rows]
    ax1.bar(
        range(len(rows)),
        [r[key] for r in rows],
        yerr=[lows, highs],
        capsize=4,
        color=[COLOURS.get(verdicts.get(r["combo"], ""), OTHER) for r in rows],
    )
    ax1.set_xticks(range(len(rows)), [r["combo"] for r in rows], rotation=30, ha="right")
    ax1.set_ylabel(key)
    ax1.set_title(
        f"{key} at the last step: mean, 95 % CI over seeds\n"
        "(green better / red worse than the baseline, Holm-adjusted p < 0.05)",
        fontsize=10,
    )
    if with_curves:
        ax2 = axes[1]
        for combo in combos:
            runs = curves[combo.name]
            steps = sorted(set.intersection(*(set(c) for c in runs))) if runs else []
            if steps:
                ax2.plot(
                    steps,
                    [statistics.fmean(c[s] for c in runs) for s in steps],
                    marker="o",
                    label=combo.name,
                )
        ax2.set_xlabel("step")
        ax2.set_ylabel(key)
        ax2.set_title(f"{key} during training (mean over seeds)", fontsize=10)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
