"""The core commands (``backends``, ``scene``, ``archive ...``, ``runs``), registered like any plug-in's.

Each module in ``COMMAND_MODULES`` has a ``commands()`` function returning ``Command``s.
"""

from __future__ import annotations

import importlib

from tac_core import registry
from tac_core.hookspecs import hookimpl

PLUGIN_NAME = "core"
COMMAND_MODULES = (
    "tac_core.cli.backends_cmd",
    "tac_core.cli.scene_cmd",
    "tac_core.cli.archive_cmd",
    "tac_core.cli.runs_cmd",
)


class _CorePlugin:
    @hookimpl
    def tac_register_commands(self, register):
        for module_name in COMMAND_MODULES:
            for cmd in importlib.import_module(module_name).commands():
                register(cmd)


def ensure_registered() -> None:
    """Add the core plug-in to the registry once."""
    if not registry.is_registered(PLUGIN_NAME):
        registry.register_plugin(_CorePlugin(), PLUGIN_NAME)
