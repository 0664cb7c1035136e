"""Checkpoints in the run folder: last.pt every N steps, at the end and on Ctrl-C."""

from __future__ import annotations

import warnings

from pydantic import BaseModel, ConfigDict, Field

from gantricks import GantricksError, Trainer, hookimpl
from gantricks.checkpoint import load as load_checkpoint


class Plugin:
    """Checkpoints in the run folder: last.pt every N steps, at the end and on Ctrl-C."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        every: int = Field(1000, ge=0, description="steps between saves of last.pt (0: end only)")
        keep_every: int = Field(0, ge=0, description="also keep step_N.pt every N steps (0: no)")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.saved_step = -1

    def _save(self, trainer: Trainer, name: str, require_finite: bool = True) -> None:
        trainer.save_checkpoint(trainer.run_dir / "checkpoints" / name, require_finite)

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        self.saved_step = trainer.step

    @hookimpl(trylast=True)
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        every, keep_every = self.config.every, self.config.keep_every
        last = bool(every) and step % every == 0
        kept = bool(keep_every) and step % keep_every == 0
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
        elif reason == "nonfinite":
            # Kept apart so last.pt stays the last good state.
            self._save(trainer, "nonfinite.pt", require_finite=False)
            good = "no good checkpoint was saved before it"
            last = folder / "last.pt"
            if last.is_file():
                # Its step, read back: after a resume from an older step_N.pt, last.pt may
                # still hold the later state of the branch that was left.
                try:
                    step = load_checkpoint(last)["step"]
                    good = f"the last good checkpoint is {last} (step {step})"
                except GantricksError as e:
                    good = f"{last} is there but unreadable: {e}"
            print(
                f"saved the non-finite state to {folder / 'nonfinite.pt'} for inspection; {good}",
                flush=True,
            )
