"""`gantricks bench`: combos × seeds, reports, statistics, resume and failures."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from gantricks import GantricksError
from gantricks.bench import (
    PAPER,
    BenchSpec,
    Combo,
    ablation_combos,
    load_combo_file,
    parse_combos,
    run_bench,
)


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))
    base = {"ngf": 8, "ndf": 8, "nz": 16, "batch_size": 16, "steps": 4, "device": "cpu"}
    return BenchSpec(
        combos=parse_combos("none; label_smooth,historical_averaging"),
        seeds=2,
        base=base,
        metrics=["classifier"],
        out=tmp_path / "bench",
        num_samples=20,
        command="gantricks bench (test)",
    )


def test_parse_combos_and_ablation():
    combos = parse_combos(" none ; minibatch,label_smooth; all ")
    assert [c.name for c in combos] == ["none", "minibatch,label_smooth", "all"]
    # all: the paper's "Our methods" (Salimans et al. 2016, Table 3): no FM, no HA.
    assert combos[0].plugins == [] and combos[2].plugins == list(PAPER)
    assert set(PAPER) == {"minibatch", "labels", "label_smooth", "virtual_batchnorm"}
    ab = {c.name: set(c.plugins) for c in ablation_combos()}
    paper = set(PAPER)
    assert ab == {
        "Our methods": paper,
        "-VBN+BN": paper - {"virtual_batchnorm"},
        "-L+HA": paper - {"labels"} | {"historical_averaging"},
        "-LS": paper - {"label_smooth"},
        "-L": paper - {"labels"},
        "-MBF": paper - {"minibatch"},
    }
    with pytest.raises(GantricksError, match="names no combination"):
        parse_combos(" ; ")


def test_combo_file_with_options(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        '[[combo]]\nname = "mb50"\nplugins = ["minibatch"]\n'
        "[combo.options.minibatch]\nkernels = 50\n\n"
        '[[combo]]\nplugins = "all"\n'
    )
    combos = load_combo_file(f)
    assert combos[0].options == {"minibatch": {"kernels": 50}}
    assert combos[1].name == ",".join(PAPER)
    f.write_text('[[combo]]\nname = "x"\nplugin = ["minibatch"]\n')
    with pytest.raises(GantricksError, match="keys must be name, plugins, options"):
        load_combo_file(f)


def test_tiny_bench_writes_every_report_with_correct_statistics(spec):
    records = run_bench(spec)
    assert [(r["combo"], r["seed"], r["status"]) for r in records] == [
        ("none", 0, "ok"),
        ("none", 1, "ok"),
        ("label_smooth,historical_averaging", 0, "ok"),
        ("label_smooth,historical_averaging", 1, "ok"),
    ]
    out = spec.out
    for name in ("results.csv", "results.json", "results.md", "results.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4
    summary = json.loads((out / "results.json").read_text())["summary"]
    for combo in ("none", "label_smooth,historical_averaging"):
        values = [float(r["classifier_score"]) for r in rows if r["combo"] == combo]
        row = next(s for s in summary if s["combo"] == combo)
        assert row["classifier_score"] == pytest.approx(statistics.fmean(values))
        assert row["classifier_score_std"] == pytest.approx(statistics.stdev(values))
        assert row["runs"] == 2
    md = (out / "results.md").read_text()
    assert "gantricks bench (test)" in md and "torch" in md and "**" in md
    assert "## Against the baseline, none" in md and "p (Holm)" in md
    doc = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    compared = [c for c in doc["comparisons"] if c["metric"] == "classifier_score"]
    assert compared[0]["verdict"] == "baseline" and len(compared) == 2
    assert "classifier_score_verdict" in rows[0]
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == sorted(
        r["run"].split("/")[-1] for r in records
    )
    # Each run is a normal run folder, with the trick's loss terms in its log.
    run = out / "runs" / "label_smooth_historical_averaging-seed1"
    assert "loss_g/hist_avg" in (run / "metrics.jsonl").read_text()


def test_bench_checks_every_combo_before_training(spec):
    spec.combos = parse_combos("none; nosuchtrick")
    with pytest.raises(GantricksError, match="combo 'nosuchtrick': unknown plugin 'nosuchtrick'"):
        run_bench(spec)
    spec.combos = [Combo("mb", ["minibatch"], {"minibatch": {"kernals": 5}})]
    with pytest.raises(GantricksError, match=r"combo 'mb': unknown option 'minibatch.kernals'"):
        run_bench(spec)
    spec.combos, spec.metrics = parse_combos("none"), ["fdi"]
    with pytest.raises(GantricksError, match=r"combo 'none': eval.metrics has unknown metric"):
        run_bench(spec)
    assert not (spec.out / "runs").exists()  # nothing trained


def test_bench_resumes_and_records_failures(spec, tmp_path):
    boom = tmp_path / "boom.py"  # loads and validates, then fails in training
    boom.write_text(
        "from gantricks import hookimpl\n"
        "@hookimpl\ndef gantricks_train_start(trainer):\n"
        "    raise RuntimeError('boom at train start')\n"
    )
    spec.combos = parse_combos(f"none; {boom}")
    first = run_bench(spec)
    assert [r["status"] for r in first] == ["ok", "ok", "failed", "failed"]
    assert "boom at train start" in first[2]["error"]
    assert "failed" in (spec.out / "results.md").read_text()
    second = run_bench(spec)
    assert [r.get("skipped", False) for r in second] == [True, True, False, False]
    assert [r["metrics"] for r in second[:2]] == [r["metrics"] for r in first[:2]]


def test_bench_refuses_to_reuse_runs_made_with_other_settings(spec):
    spec.combos, spec.seeds = parse_combos("none"), 1
    run_bench(spec)
    result = spec.out / "runs" / "none-seed0" / "result.json"
    before = result.read_text()
    spec.base = {**spec.base, "steps": 6}
    with pytest.raises(GantricksError, match=r"other settings \(differing: base\)"):
        run_bench(spec)
    assert result.read_text() == before  # neither reused nor overwritten


def test_combos_sharing_a_name_or_folder_are_refused(spec, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        '[[combo]]\nplugins = ["minibatch"]\noptions.minibatch.kernels = 50\n'
        '[[combo]]\nplugins = ["minibatch"]\noptions.minibatch.kernels = 100\n'
    )
    spec.combos = load_combo_file(f)
    with pytest.raises(GantricksError, match="same name 'minibatch'"):
        run_bench(spec)
    spec.combos = parse_combos("minibatch,label_smooth; minibatch label_smooth")
    with pytest.raises(GantricksError, match="same run-folder name 'minibatch_label_smooth'"):
        run_bench(spec)
    assert not (spec.out / "runs").exists()


def test_hparams_show_every_run_with_its_combination_options_seed_and_scores(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from gantricks.bench.hparams import write_hparams

    combos = [Combo("none", []), Combo("mb5", ["minibatch"], {"minibatch": {"kernels": 5}})]
    records = [
        {"combo": "none", "seed": 0, "status": "ok", "metrics": {"fid": 30.0, "is": 2.5}},
        {"combo": "mb5", "seed": 1, "status": "ok", "metrics": {"fid": 40.0}, "step": 9},
        {"combo": "mb5", "seed": 0, "status": "failed", "error": "x"},
    ]
    meta = {"base": {"steps": 9, "batch_size": 64, "data_dir": "/data"}, "num_samples": 100}
    write_hparams(tmp_path / "tb", records, combos, meta)
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["mb5-seed1", "none-seed0"]
    acc = EventAccumulator(str(tmp_path / "tb" / "mb5-seed1"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["combo"].string_value == "mb5" and hp["seed"].number_value == 1
    assert (hp["minibatch"].number_value, hp["label_smooth"].number_value) == (1, 0)
    assert hp["minibatch.kernels"].number_value == 5 and hp["steps"].number_value == 9
    assert "data_dir" not in hp
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert [m.name.tag for m in exp.experiment.metric_infos] == ["bench/fid", "bench/is"]
    assert [(e.step, e.value) for e in acc.Scalars("bench/fid")] == [(9, 40.0)]


def test_the_paper_table3_config_is_the_papers_rows_and_checks_before_training(tmp_path):
    """Every row of benchmarks/configs/paper_table3.toml validates before anything trains,
    in the authors' set-up; a missing dataset is then the only failure."""
    from pathlib import Path

    from gantricks.bench.spec import check_combos

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "paper_table3.toml"
    combos = load_combo_file(path)
    rows = {c.name: set(c.plugins) for c in combos}
    assert rows == {c.name: set(c.plugins) for c in ablation_combos()}
    for c in combos:
        assert c.options["model"] == "improved-gan" and c.options["g_steps"] == 3
        assert c.options["generator_loss"] == "minimax" and c.options["batch_size"] == 100
        assert ("labels" in c.options) == ("labels" in c.plugins)
    spec = BenchSpec(
        combos=combos, seeds=1, base={"steps": 10, "dataset": "cifar10", "download": False},
        metrics=["is"], out=tmp_path / "b", num_samples=10, command="test",
    )  # fmt: skip
    check_combos(spec)  # no error: every row's plugins and options are valid
