"""tac_core: the backend-neutral layer of tac (no ML framework is imported here).

It owns the contest contract, video I/O, the interfaces, the archive wire
format, evidence records, the plug-in registry and the synthetic scenes.
"""

from importlib import metadata as _metadata

from tac_core import contract, errors
from tac_core.errors import TacError
from tac_core.hookspecs import hookimpl
from tac_core import registry
from tac_core.registry import BackendInfo, Command, register_plugin

try:
    __version__ = _metadata.version("tac")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "BackendInfo",
    "Command",
    "TacError",
    "__version__",
    "contract",
    "errors",
    "hookimpl",
    "register_plugin",
    "registry",
]
