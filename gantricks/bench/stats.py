"""Each combination against a baseline: is the difference of mean scores real?

Per headline metric and combination, over the seeds that finished:

- the difference of means (combination − baseline) with its 95 % confidence interval by
  Welch's t (unequal variances, Welch–Satterthwaite degrees of freedom);
- the two-sided p-value of Welch's t-test (as ``scipy.stats.ttest_ind(equal_var=False)``);
- Holm's step-down correction of those p-values over the combinations compared with the
  baseline (one family per metric);
- a verdict: ``better`` or ``worse`` (in the metric's direction) only where the Holm-adjusted
  p is below ``ALPHA``; ``no evidence`` otherwise.

Why not a bootstrap or Mann–Whitney: with 3 seeds a side, a bootstrap over seeds has 10
distinct resamples per side and its interval is too narrow; Mann–Whitney U's smallest
two-sided p-value for 3 against 3 is 0.1, so it could never call a difference. Welch's t
assumes roughly normal seed-to-seed spread, which is the usual working assumption for
scores averaged over thousands of samples; its intervals are wide at small n, as they should
be.

Cases with no test, said in words rather than as NaN: fewer than 2 finished seeds on either
side (``not enough seeds``); both sides without spread (every seed the same score, e.g. a
collapsed generator): ``no difference (no spread)`` when the constants are equal, ``differs
(no spread)`` when they are not — no p-value, and not counted in Holm's family.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

ALPHA = 0.05
CONFIDENCE = 0.95

BETTER, WORSE, NO_EVIDENCE = "better", "worse", "no evidence"
NOT_ENOUGH = "not enough seeds"
SAME_NO_SPREAD, DIFFERS_NO_SPREAD = "no difference (no spread)", "differs (no spread)"
BASELINE = "baseline"

METHOD = (
    "Welch's t-test (two-sided, unequal variances) of each combination against the "
    "baseline; 95 % confidence interval of the difference of means by Welch's t "
    "(Welch–Satterthwaite degrees of freedom), per comparison; Holm's correction of the "
    f"p-values over the combinations, per metric; better / worse where the Holm-adjusted "
    f"p < {ALPHA} in the metric's direction, else no evidence at this number of seeds"
)


@dataclass
class Comparison:
    """One combination against the baseline on one metric. Absent numbers are None."""

    combo: str
    metric: str
    baseline: str
    n: int
    n_baseline: int
    mean: float | None
    mean_baseline: float | None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    df: float | None = None
    p: float | None = None
    p_holm: float | None = None
    verdict: str = NOT_ENOUGH

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_ci(values: list[float]) -> tuple[float, float] | None:
    """95 % t interval of the mean of ``values``; None below 2 values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


def welch(values: list[float], baseline: list[float]) -> tuple[float, float, float, float, float]:
    """Difference of means, its 95 % CI, Welch's degrees of freedom and the two-sided p-value.
    Needs n ≥ 2 on both sides and spread on at least one."""
    from scipy import stats

    n1, n2 = len(values), len(baseline)
    v1 = statistics.variance(values) / n1
    v2 = statistics.variance(baseline) / n2
    se2 = v1 + v2
    diff = statistics.fmean(values) - statistics.fmean(baseline)
    df = se2**2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(se2)
    # Welch's t-test, as scipy.stats.ttest_ind(values, baseline, equal_var=False) computes it
    # (tested against it), without its warning when one side has no spread.
    p = float(2 * stats.t.sf(abs(diff) / math.sqrt(se2), df))
    return diff, diff - half, diff + half, df, p


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def compare(
    values: list[float],
    baseline: list[float],
    higher_is_better: bool,
    combo: str = "",
    metric: str = "",
    baseline_name: str = "",
) -> Comparison:
    """One comparison, before Holm's correction (``p_holm`` is filled in by
    :func:`compare_all`; ``verdict`` here uses the unadjusted p)."""
    values = [v for v in values if math.isfinite(v)]
    baseline = [v for v in baseline if math.isfinite(v)]
    c = Comparison(
        combo,
        metric,
        baseline_name,
        len(values),
        len(baseline),
        statistics.fmean(values) if values else None,
        statistics.fmean(baseline) if baseline else None,
    )
    if values and baseline:
        assert c.mean is not None and c.mean_baseline is not None
        c.diff = c.mean - c.mean_baseline
    if len(values) < 2 or len(baseline) < 2:
        c.verdict = NOT_ENOUGH
        return c
    if statistics.variance(values) == 0 and statistics.variance(baseline) == 0:
        c.ci_low = c.ci_high = c.diff
        c.verdict = SAME_NO_SPREAD if c.diff == 0 else DIFFERS_NO_SPREAD
        return c
    c.diff, c.ci_low, c.ci_high, c.df, c.p = welch(values, baseline)
    c.p_holm = c.p
    c.verdict = _verdict(c.diff, c.p, higher_is_better)
    return c


def _verdict(diff: float, p: float, higher_is_better: bool) -> str:
    if p >= ALPHA or diff == 0:
        return NO_EVIDENCE
    return BETTER if (diff > 0) == higher_is_better else WORSE


def compare_all(
    scores: dict[str, dict[str, list[float]]],
    baseline: str,
    directions: dict[str, bool],
) -> list[Comparison]:
    """``scores[combo][metric]`` -> seeds' values. Every combination other than the baseline
    against it, per metric, with Holm's correction over the combinations of each metric.
    The baseline's own rows have verdict ``baseline``."""
    out: list[Comparison] = []
    metrics = sorted({m for per in scores.values() for m in per})
    for metric in metrics:
        base = scores.get(baseline, {}).get(metric, [])
        higher = directions.get(metric, True)
        family = []
        for combo, per in scores.items():
            if metric not in per and combo != baseline:
                continue
            if combo == baseline:
                finite = [v for v in base if math.isfinite(v)]
                out.append(
                    Comparison(
                        combo,
                        metric,
                        baseline,
                        len(finite),
                        len(finite),
                        statistics.fmean(finite) if finite else None,
                        statistics.fmean(finite) if finite else None,
                        verdict=BASELINE,
                    )
                )
                continue
            c = compare(per[metric], base, higher, combo, metric, baseline)
            out.append(c)
            if c.p is not None and c.diff is not None:
                family.append((c, c.diff, c.p))
        adjusted = holm([p for _, _, p in family])
        for (c, diff, _), p_holm in zip(family, adjusted, strict=True):
            c.p_holm = p_holm
            c.verdict = _verdict(diff, p_holm, higher)
    return out
