"""The plug-in manager: discovers backends once, lazily, and holds what they register.

Discovery loads the ``tac.backends`` entry points (the built-in backends and
any outside plug-in). ``TAC_BACKENDS=torch,mlx`` restricts which entry points
load; an empty value loads none. Nothing here imports an ML framework: a
backend's ``plugin`` module must import its framework lazily.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from tac_core import hookspecs
from tac_core.errors import BackendError

ENTRY_POINT_GROUP = "tac.backends"
BACKENDS_ENV = "TAC_BACKENDS"
KINDS = ("scorers", "renderers", "codecs")


@dataclass(frozen=True)
class BackendInfo:
    """What a backend says about itself without importing its framework.

    ``probe`` is ``"module:function"``; called (in a subprocess by ``tac
    backends``) it returns ``{"version": str, "devices": [str, ...]}`` or
    raises when the framework is unusable.
    """

    name: str
    framework: str
    probe: str
    axes: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Registered:
    """A named factory some plug-in registered (a scorer, renderer or codec)."""

    kind: str
    name: str
    plugin: str
    factory: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class Command:
    """A CLI subcommand: ``configure(parser)`` adds arguments, ``run(args)`` does the work."""

    name: str
    help: str
    configure: Callable[[Any], None]
    run: Callable[[Any], int | None]
    plugin: str = ""


@dataclass
class Registry:
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    items: dict[str, dict[str, Registered]] = field(default_factory=lambda: {k: {} for k in KINDS})
    commands: dict[str, Command] = field(default_factory=dict)
    plugin_of_backend: dict[str, str] = field(default_factory=dict)

    def of_plugin(self, plugin: str) -> dict[str, list[str]]:
        """Names each kind got from ``plugin``."""
        return {k: sorted(n for n, r in self.items[k].items() if r.plugin == plugin) for k in KINDS}


_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_registry: Registry | None = None
_extra: list[tuple[object, str]] = []


def allowed_backends() -> set[str] | None:
    """Names allowed by ``TAC_BACKENDS``, or None when it is unset."""
    value = os.environ.get(BACKENDS_ENV)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("tac")
    pm.add_hookspecs(hookspecs)
    allowed = allowed_backends()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plug-in must not break tac
            pm.register(_BrokenPlugin(ep.name, ep.value, exc), name=ep.name)
            continue
        pm.register(module, name=ep.name)
    for plugin, name in _extra:
        if pm.get_plugin(name) is None:
            pm.register(plugin, name=name)
    return pm


class _BrokenPlugin:
    """Stands for an entry point that failed to import, so ``tac backends`` can say why."""

    def __init__(self, name: str, target: str, exc: BaseException):
        self.name, self.target, self.exc = name, target, exc

    @hookspecs.hookimpl
    def tac_register_backends(self, register):
        register(BackendInfo(name=self.name, framework="", probe="",
                             description=f"plug-in {self.target} failed to import: "
                                         f"{type(self.exc).__name__}: {self.exc}"))


def _collect(pm: pluggy.PluginManager) -> Registry:
    reg = Registry()
    for impl in pm.hook.tac_register_backends.get_hookimpls():
        def add_backend(info: BackendInfo, _plugin=impl.plugin_name):
            reg.backends[info.name] = info
            reg.plugin_of_backend[info.name] = _plugin
        impl.function(register=add_backend)
    for kind in KINDS:
        hook = getattr(pm.hook, f"tac_register_{kind}")
        for impl in hook.get_hookimpls():
            def add(name: str, factory: Callable[..., Any], description: str = "",
                    _plugin=impl.plugin_name, _kind=kind):
                reg.items[_kind][name] = Registered(_kind, name, _plugin, factory, description)
            impl.function(register=add)
    for impl in pm.hook.tac_register_commands.get_hookimpls():
        def add_command(cmd: Command, _plugin=impl.plugin_name):
            reg.commands[cmd.name] = Command(cmd.name, cmd.help, cmd.configure, cmd.run, _plugin)
        impl.function(register=add_command)
    return reg


def load() -> Registry:
    """The registry, built on first use from every allowed plug-in (then kept)."""
    global _manager, _registry
    with _lock:
        if _registry is None:
            _manager = _new_manager()
            _registry = _collect(_manager)
        return _registry


def register_plugin(plugin: object, name: str) -> None:
    """Add a plug-in object (a module or instance with ``tac_*`` hooks) and rebuild the registry."""
    with _lock:
        _extra.append((plugin, name))
    reset(keep_extra=True)


def reset(keep_extra: bool = False) -> None:
    """Forget discovery; the next ``load()`` call discovers again."""
    global _manager, _registry
    with _lock:
        _manager, _registry = None, None
        if not keep_extra:
            _extra.clear()


def get(kind: str, name: str) -> Registered:
    """The ``kind`` ("scorers", "renderers", "codecs") registered as ``name``."""
    reg = load()
    if kind not in reg.items:
        raise BackendError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        return reg.items[kind][name]
    except KeyError:
        known = ", ".join(sorted(reg.items[kind])) or "none"
        raise BackendError(f"no {kind[:-1]} named {name!r} is registered (known: {known}); "
                           f"is its backend installed? see `tac backends`") from None


def is_registered(name: str) -> bool:
    """Whether a plug-in object was added under ``name`` with ``register_plugin``."""
    return any(n == name for _, n in _extra)
