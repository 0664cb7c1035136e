"""The order in which plugins run for one hook: every rule in one place (tested in
``tests/test_ordering.py``).

1. **Registration order.** A run registers the default infrastructure plugins first (in
   :data:`gantricks.plugin_manager.DEFAULT_PLUGINS` order), then the plugins of
   ``--plugins`` in the order given, then objects passed to :func:`gantricks.run.prepare`
   as ``extra_plugins``.
2. **Last registered, first called.** pluggy calls a hook's implementations from the most
   recently registered to the first (``trylast`` ones the other way round: the earliest
   registered of them first). So your plugins run before the infrastructure, and of
   two of yours the one listed later runs first. For a ``firstresult`` hook
   (``gantricks_discriminator_targets``, ``gantricks_sampling_generator``) that one
   decides.
3. **tryfirst / trylast.** ``@hookimpl(tryfirst=True)`` moves an implementation to the
   front, ``trylast=True`` to the back, whatever the registration order. Plugins that
   depend on another's work use these, following the conventions below, rather than
   asking users to list them in a particular order.
4. **Conventions** (the built-ins follow them; follow them in your plugins):

   - ``gantricks_train_start``: a plugin that makes D's output meaningful before anyone
     reads it (a reference batch in D: ``virtual_batchnorm`` with ``discriminator=true``)
     is ``tryfirst``; then the plain implementations; then the models' data-dependent
     initialisation (weight-normalised layers, minibatch discrimination: the trainer's own
     ``gantricks:data_init``, ``trylast`` and registered before every plugin, so it runs
     first of the ``trylast`` ones); then a plugin that records the weights as training
     starts (``historical_averaging``'s first θ, an EMA copy of G), ``trylast``.
   - ``gantricks_step_end``: ``checkpoint`` is ``trylast``, so ``last.pt`` is written after
     the step's other end work (``eval``'s scores and ``best.pt``).
   - ``gantricks_train_end``: ``checkpoint`` is ``tryfirst``, so the final ``last.pt`` is on
     disk before any other end work, which may fail; end work that reports on the saved
     state (``labels``'s test error at an interruption) is ``trylast``.
   - ``gantricks_log``: the order does not matter: values plugins log with
     :meth:`gantricks.Plugin.log` are in ``scalars`` before the hook runs.

:func:`call_order` shows the resulting order of any hook for a loaded run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gantricks.plugin_manager import PluginManager


def call_order(plugins: PluginManager, hook_name: str) -> list[str]:
    """The plugins implementing ``hook_name``, in the order they are called."""
    return plugins.implementers(hook_name)
