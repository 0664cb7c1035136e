"""A run's life cycle before the loop: options (:mod:`.options`), its folder
(:mod:`.folder`), the checks a resumed run passes (:mod:`.resume`), and the assembly of a
ready trainer (:mod:`.prepare`)."""

from gantricks.run.folder import run_dir_of
from gantricks.run.options import split_options
from gantricks.run.prepare import load_models, load_plugins, prepare

__all__ = ["load_models", "load_plugins", "prepare", "run_dir_of", "split_options"]
