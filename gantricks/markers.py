"""The two pluggy markers of the ``gantricks`` project: hook specifications and
implementations. A leaf module, so that every other module may import it."""

from __future__ import annotations

import pluggy

PROJECT = "gantricks"

#: Marks a hook specification in :mod:`gantricks.hookspecs`.
hookspec = pluggy.HookspecMarker(PROJECT)

#: Marks a hook implementation: ``@hookimpl def gantricks_generator_loss(...)``.
hookimpl = pluggy.HookimplMarker(PROJECT)
