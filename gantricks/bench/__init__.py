"""``gantricks bench``: every trick combination × seed, trained, scored, tabulated and
compared with a baseline.

Each run is an ordinary run folder under ``OUT/runs/<combo>-seed<k>`` with its own
``result.json``; a bench that is interrupted and started again skips the runs whose result
says ``ok``, resumes those stopped early from their ``last.pt`` and retries the others. A run
that fails is recorded with its error and does not stop the rest. Runs train in this
process, in local worker processes (``jobs``, ``gpus``) or as Slurm jobs (``executor =
"slurm"``); the reports (:mod:`gantricks.bench.report`) give, per combination, the mean and
sample standard deviation over seeds of each metric's headline number and, against the
baseline, the difference of means with its 95 % confidence interval, Welch's p-value,
Holm's correction and a verdict (:mod:`gantricks.bench.stats`).

Modules: ``combos`` (what to train), ``spec`` (options), ``runs`` (one run), ``worker``
(a run in its own process or job), ``executors`` (where runs train), ``runner``
(``run_bench``), ``stats``, ``report``, ``plot``, ``hparams``.
"""

from gantricks.bench.combos import (
    PAPER,
    TRICKS,
    Combo,
    ablation_combos,
    check_unique,
    load_combo_file,
    parse_combos,
)
from gantricks.bench.report import report_again, summarise, write_reports
from gantricks.bench.runner import BenchInterrupted, run_bench
from gantricks.bench.spec import (
    HEADLINES,
    OFF,
    BenchSpec,
    SlurmOptions,
    check_combos,
    settings_of,
)

__all__ = [
    "HEADLINES",
    "OFF",
    "PAPER",
    "TRICKS",
    "BenchInterrupted",
    "BenchSpec",
    "Combo",
    "SlurmOptions",
    "ablation_combos",
    "check_combos",
    "check_unique",
    "load_combo_file",
    "parse_combos",
    "report_again",
    "run_bench",
    "settings_of",
    "summarise",
    "write_reports",
]
