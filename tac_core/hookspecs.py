"""Hook specifications: how a plug-in adds backends, scorers, renderers, codecs and commands.

Every hook takes a ``register`` callback and returns nothing. A plug-in is any
module or object with functions named like these and marked with
``tac_core.hookimpl``; the built-in backends are ordinary plug-ins found
through the ``tac.backends`` entry-point group.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tac")
hookimpl = pluggy.HookimplMarker("tac")


@hookspec
def tac_register_backends(register):
    """Register ``BackendInfo`` records: the framework a plug-in runs on."""


@hookspec
def tac_register_scorers(register):
    """Register scorer factories: ``register(name, factory, description)``."""


@hookspec
def tac_register_renderers(register):
    """Register renderer factories: ``register(name, factory, description)``."""


@hookspec
def tac_register_codecs(register):
    """Register codec factories: ``register(name, factory, description)``."""


@hookspec
def tac_register_commands(register):
    """Register CLI commands: ``register(Command(...))``."""
