"""Checkpoints in the run folder: last.pt every N steps, at the end, on Ctrl-C and on errors."""

from __future__ import annotations

import warnings

from pydantic import Field

from gantricks import (
    GantricksError,
    Plugin,
    PluginConfig,
    Trainer,
    WriteError,
    hookimpl,
    load_checkpoint,
)


class Config(PluginConfig):
    every: int = Field(1000, ge=0, description="steps between saves of last.pt (0: end only)")
    keep_every: int = Field(0, ge=0, description="also keep step_N.pt every N steps (0: no)")


class Checkpoint(Plugin):
    """Checkpoints in the run folder: last.pt every N steps, at the end, on Ctrl-C and on errors."""

    Config = Config
    main_process_only = True
    saved_step = -1
    #: A save of this plugin's failed (a full disk, a read-only folder): that error stops
    #: the run and says what is intact, so no second attempt is made after it.
    write_failed = False

    def _save(self, trainer: Trainer, name: str, require_finite: bool = True) -> None:
        try:
            trainer.save_checkpoint(trainer.run_dir / "checkpoints" / name, require_finite)
        except WriteError:
            self.write_failed = True
            raise

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        self.saved_step = trainer.step

    @hookimpl(trylast=True)  # after this step's other end-of-step work (see gantricks.ordering)
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        last = self.every(self.config.every, step)
        kept = self.every(self.config.keep_every, step)
        if not (last or kept):
            return
        checked = trainer.dist.enabled
        if checked and not trainer.parameters_finite():
            # Only rank 0 saves; stopping here would leave the other ranks waiting in the
            # next collective. The loss check at the next log step, which every rank takes
            # together, stops the run; last.pt stays the last good state.
            warnings.warn(
                f"step {step}: parameters are non-finite, checkpoint not saved; the run "
                "stops at the next log step",
                stacklevel=2,
            )
            return
        if last:
            self._save(trainer, "last.pt", require_finite=not checked)
            self.saved_step = step
        if kept:
            self._save(trainer, f"step_{step:07d}.pt", require_finite=not checked)

    @hookimpl(tryfirst=True)  # saved before other plugins' end work, which may fail
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        folder = trainer.run_dir / "checkpoints"
        if reason in ("completed", "interrupted"):
            if self.saved_step != trainer.step:
                self._save(trainer, "last.pt")
                self.saved_step = trainer.step
            if reason == "interrupted":
                print(
                    f"saved {folder / 'last.pt'} at step {trainer.step}; continue with "
                    f"`gantricks train --resume {trainer.run_dir}`",
                    flush=True,
                )
        elif reason == "error":
            self._save_after_error(trainer)
        elif reason == "nonfinite":
            # Kept apart so last.pt stays the last good state.
            self._save(trainer, "nonfinite.pt", require_finite=False)
            print(
                f"saved the non-finite state to {folder / 'nonfinite.pt'} for inspection; "
                f"{self._last_good(trainer)}",
                flush=True,
            )

    def _save_after_error(self, trainer: Trainer) -> None:
        """An exception stopped the run (a plugin's, say): keep its progress, as Ctrl-C
        does, when the weights are sound; never replace a good last.pt with bad weights."""
        if trainer.step == 0 or (self.saved_step == trainer.step and trainer.step_complete):
            return  # nothing new since the last save
        if self.write_failed:
            return  # the error is this plugin's own failed save, which says what is intact
        last = trainer.run_dir / "checkpoints" / "last.pt"
        try:
            if not trainer.parameters_finite():
                print(
                    f"not saved after the error: the weights are non-finite; "
                    f"{self._last_good(trainer)}",
                    flush=True,
                )
                return
            self._save(trainer, "last.pt", require_finite=False)
        except Exception as e:  # the failure may be the disk's: report, keep the first error
            cause = e.cause if isinstance(e, WriteError) else f"{type(e).__name__}: {e}"
            print(
                f"could not save {last} after the error: {cause}; {self._last_good(trainer)}",
                flush=True,
            )
            return
        self.saved_step = trainer.step
        partial = (
            ""
            if trainer.step_complete
            else " (the failed step's partial update included, so the continuation is not "
            "bit-identical to an uninterrupted run)"
        )
        print(
            f"saved {last} at step {trainer.step} after the error below{partial}; fix the "
            f"cause and continue with `gantricks train --resume {trainer.run_dir}`",
            flush=True,
        )

    @staticmethod
    def _last_good(trainer: Trainer) -> str:
        last = trainer.run_dir / "checkpoints" / "last.pt"
        if not last.is_file():
            return "no good checkpoint was saved before it"
        # Its step, read back: after a resume from an older step_N.pt, last.pt may still
        # hold the later state of the branch that was left.
        try:
            return f"the last good checkpoint is {last} (step {load_checkpoint(last)['step']})"
        except GantricksError as e:
            return f"{last} is there but unreadable: {e}"
