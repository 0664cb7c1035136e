"""The bench's statistics: Welch's t against scipy and by hand, Holm, verdicts, small n."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
from scipy import stats as sps

from gantricks.bench import report_again
from gantricks.bench import stats as bs

GRID = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mnist_grid"


@pytest.mark.parametrize("n1,n2", [(2, 2), (3, 3), (3, 5), (5, 2), (10, 7)])
def test_welch_matches_scipy_on_random_data(n1, n2):
    rng = random.Random(n1 * 100 + n2)
    for _ in range(20):
        a = [rng.gauss(1.0, rng.uniform(0.1, 2)) for _ in range(n1)]
        b = [rng.gauss(0.0, rng.uniform(0.1, 2)) for _ in range(n2)]
        diff, low, high, df, p = bs.welch(a, b)
        ref = sps.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert p == pytest.approx(ref.pvalue, rel=1e-12)
        assert df == pytest.approx(ref.df, rel=1e-12)
        assert (low, high) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
        assert diff == pytest.approx(sum(a) / n1 - sum(b) / n2)


def test_welch_by_hand():
    # [5, 6, 7] against [1, 2, 3]: difference 4; each variance 1, so the squared standard
    # error is 1/3 + 1/3 = 2/3 and Welch's df = (2/3)² / ((1/3)²/2 + (1/3)²/2) = 4 exactly;
    # t = 4 / √(2/3) = 4.899; t(0.975, 4) = 2.776445, half-width 2.776445·√(2/3) = 2.266957;
    # two-sided p = 2·P(T₄ > 4.899) = 0.00805 (t tables: between 0.005 and 0.01).
    diff, low, high, df, p = bs.welch([5, 6, 7], [1, 2, 3])
    assert diff == 4 and df == pytest.approx(4.0)
    assert low == pytest.approx(4 - 2.266957, abs=1e-6)
    assert high == pytest.approx(4 + 2.266957, abs=1e-6)
    assert p == pytest.approx(0.00805, abs=5e-5)
    c = bs.compare([5, 6, 7], [1, 2, 3], higher_is_better=True)
    assert c.verdict == "better"
    assert bs.compare([5, 6, 7], [1, 2, 3], higher_is_better=False).verdict == "worse"


def test_holm_by_hand():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> kept at 0.06.
    assert bs.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert bs.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert bs.holm([]) == []


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy's, on [1, 1, 1]
def test_small_samples_and_no_spread_say_so_never_nan():
    one = bs.compare([3.0], [1.0, 2.0, 3.0], True)
    assert one.verdict == "not enough seeds" and one.p is None and one.diff == 1.0
    assert bs.compare([], [1.0, 2.0], True).diff is None
    two = bs.compare([3.0, 4.0], [1.0, 2.0], True)
    assert two.p is not None and two.df == pytest.approx(2.0) and two.verdict == "no evidence"
    same = bs.compare([1.0, 1.0, 1.0], [1.0, 1.0], True)
    assert (same.verdict, same.p, same.diff) == ("no difference (no spread)", None, 0.0)
    differ = bs.compare([1.0, 1.0, 1.0], [10.0, 10.0, 10.0], True)
    assert (differ.verdict, differ.p, differ.diff) == ("differs (no spread)", None, -9.0)
    # One side constant, the other not: Welch's test is defined.
    mixed = bs.compare([1.0, 1.0, 1.0], [3.0, 3.4, 3.7], True)
    assert mixed.p == pytest.approx(sps.ttest_ind([1, 1, 1], [3, 3.4, 3.7], equal_var=False).pvalue)
    nan = bs.compare([1.0, math.nan, 2.0], [1.0, 2.0], True)
    assert nan.n == 2  # a non-finite score is left out
    for c in (one, two, same, differ, mixed, nan):
        assert not any(isinstance(v, float) and math.isnan(v) for v in c.as_dict().values())


def test_compare_all_applies_holm_per_metric_and_honours_direction():
    scores = {
        "none": {"fid": [50.0, 52.0, 51.0], "is": [2.0, 2.1, 2.2]},
        "a": {"fid": [40.0, 41.0, 40.5], "is": [2.0, 2.2, 2.1]},
        "b": {"fid": [60.0, 62.0, 61.0], "is": [3.0]},
        "c": {"fid": [50.0, 50.0, 50.0]},
    }
    out = {(c.combo, c.metric): c for c in bs.compare_all(scores, "none", {"fid": False})}
    assert out[("none", "fid")].verdict == "baseline"
    family = [out[("a", "fid")], out[("b", "fid")], out[("c", "fid")]]
    adjusted = bs.holm([c.p for c in family])
    assert [c.p_holm for c in family] == pytest.approx(adjusted)
    assert out[("a", "fid")].verdict == "better"  # lower FID
    assert out[("b", "fid")].verdict == "worse"
    assert out[("b", "is")].verdict == "not enough seeds"
    assert out[("a", "is")].verdict == "no evidence"
    assert ("c", "is") not in out  # c has no IS


def test_report_again_rebuilds_the_mnist_grid_from_its_stored_rows(tmp_path):
    shutil.copy(GRID / "results.json", tmp_path / "results.json")
    report_again(tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["baseline"] == "none" and "Welch" in doc["statistics"]["method"]
    by = {(c["combo"], c["metric"]): c for c in doc["comparisons"]}
    runs = {}
    for r in doc["runs"]:
        runs.setdefault(r["combo"], []).append(r["metrics"]["classifier_score"])
    ref = sps.ttest_ind(runs["virtual_batchnorm"], runs["none"], equal_var=False)
    vbn = by[("virtual_batchnorm", "classifier_score")]
    assert vbn["p"] == pytest.approx(ref.pvalue) and vbn["diff"] > 0
    assert by[("all", "classes_covered")]["verdict"] == "differs (no spread)"
    assert by[("label_smooth", "classes_covered")]["verdict"] == "no difference (no spread)"
    family = [c for c in doc["comparisons"] if c["metric"] == "classifier_score" and c["p"]]
    assert [c["p_holm"] for c in family] == pytest.approx(bs.holm([c["p"] for c in family]))
    md = (tmp_path / "results.md").read_text()
    assert "Reported again" in md and "p (Holm)" in md and "nan" not in md.lower()
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 25 and "classifier_score_verdict" in rows[0]
    assert (tmp_path / "results.png").is_file()
