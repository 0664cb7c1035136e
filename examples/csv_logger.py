"""Every logged scalar as a row of a CSV file in the run folder (metrics.csv)."""

import csv

from pydantic import Field

from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    filename: str = Field("metrics.csv", description="file name in the run folder")


class CSVLogger(Plugin):
    """Every logged scalar as a row of a CSV file in the run folder (metrics.csv)."""

    Config = Config
    main_process_only = True  # one file, written by rank 0

    @hookimpl
    def gantricks_train_start(self, trainer):
        self.path = trainer.run_dir / self.config.filename
        self.rows, self._written = [], []
        if self.path.is_file():  # a resumed run: keep the rows up to its checkpoint
            with self.path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= trainer.step]
            self._write()

    @hookimpl
    def gantricks_log(self, step, scalars):
        self.rows.append({"step": step, **scalars})
        columns = self._columns()
        if self.path.is_file() and columns == self._written:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, columns).writerow(self.rows[-1])
        else:  # the first row, or new columns (scores appear at the first evaluation)
            self._write()

    def _columns(self):
        seen = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def _write(self):
        self._written = self._columns()
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self._written)
            writer.writeheader()
            writer.writerows(self.rows)
