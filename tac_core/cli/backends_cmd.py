"""``tac backends``: which backends exist here, what they register, what they can measure.

Each backend is probed in a subprocess, so this command never imports an ML
framework itself, and a framework that crashes on import is reported, not fatal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tac_core import registry
from tac_core.registry import BackendInfo, Command

PROBE_TIMEOUT_S = 180

_PROBE = (
    "import importlib, json, sys\n"
    "module, func = sys.argv[1].split(':')\n"
    "print(json.dumps(getattr(importlib.import_module(module), func)()))\n"
)


def probe(info: BackendInfo) -> dict[str, Any]:
    """``{"available": bool, "version", "devices", "reason"}`` for one backend."""
    if not info.probe:
        return {"available": False, "reason": info.description or "no probe declared"}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, info.probe], capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"probe timed out after {PROBE_TIMEOUT_S} s"}
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        return {"available": False, "reason": lines[-1] if lines else f"probe exited {done.returncode}"}
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"available": False, "reason": "probe printed no result"}
    return {"available": True, **found}


def describe_all() -> list[dict[str, Any]]:
    """One row per backend: its probe result plus what its plug-in registered."""
    reg = registry.load()
    rows = []
    for name in sorted(reg.backends):
        info = reg.backends[name]
        row = {"name": name, "framework": info.framework, "axes": list(info.axes), **probe(info)}
        row["registers"] = reg.of_plugin(reg.plugin_of_backend.get(name, name))
        rows.append(row)
    return rows


def _configure(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run(args) -> int:
    rows = describe_all()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no backends found (is TAC_BACKENDS set to an empty list?)")
    for row in rows:
        if row["available"]:
            print(f"{row['name']:<6} available    {row['framework']} {row.get('version', '?')}"
                  f"  devices: {', '.join(row.get('devices', [])) or 'none'}")
        else:
            print(f"{row['name']:<6} unavailable  {row['reason']}")
        regs = "  ".join(f"{kind}: {', '.join(names) or '-'}" for kind, names in row["registers"].items())
        print(f"       {regs}")
        print(f"       axes: {', '.join(row['axes']) or '-'}")
    return 0


def commands() -> list[Command]:
    return [Command("backends", "list backends: available or not, devices, what they register", _configure, _run)]
