"""The plug-in registry and `tac backends`."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tac_core import BackendInfo, Command, hookimpl, registry
from tac_core.cli.main import main
from tac_core.errors import BackendError


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()


def _plugin(name: str, framework: str, probe: str):
    @hookimpl
    def tac_register_backends(register):
        register(BackendInfo(name=name, framework=framework, probe=probe, axes=("proxy",)))

    @hookimpl
    def tac_register_scorers(register):
        register(f"{name}-scorer", lambda: "built", "a scorer for tests")

    @hookimpl
    def tac_register_commands(register):
        register(Command(f"{name}-hello", "says hello", lambda p: None, lambda a: print("hello") or 0))

    return types.SimpleNamespace(tac_register_backends=tac_register_backends,
                                 tac_register_scorers=tac_register_scorers,
                                 tac_register_commands=tac_register_commands)


def probe_ok():
    return {"version": "9.9", "devices": ["cpu", "toaster:0"]}


def test_a_registered_plugin_appears_in_tac_backends(capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the probe subprocess imports this file
    registry.register_plugin(_plugin("fakeai", "json", "test_registry:probe_ok"), "fakeai")
    assert registry.get("scorers", "fakeai-scorer").factory() == "built"
    assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    row = rows["fakeai"]
    assert row["available"] and row["version"] == "9.9" and "toaster:0" in row["devices"]
    assert row["registers"]["scorers"] == ["fakeai-scorer"]
    assert row["axes"] == ["proxy"]


def test_a_backend_whose_framework_fails_to_import_is_unavailable_with_the_reason(capsys):
    registry.register_plugin(_plugin("ghost", "ghost_fw", "no_such_framework_xyz.plugin:probe"), "ghost")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("ghost"))
    assert "unavailable" in line and "No module named 'no_such_framework_xyz'" in line


def test_plugin_commands_become_subcommands(capsys):
    registry.register_plugin(_plugin("fakeai", "json", "test_registry:probe_ok"), "fakeai")
    assert main(["fakeai-hello"]) == 0
    assert capsys.readouterr().out.strip() == "hello"


def test_unknown_names_are_a_clear_error():
    with pytest.raises(BackendError, match="no scorer named 'nope'"):
        registry.get("scorers", "nope")


def test_tac_backends_env_restricts_entry_points(monkeypatch):
    monkeypatch.setenv("TAC_BACKENDS", "jax")
    assert set(registry.load().backends) == {"jax"}
    registry.reset()
    monkeypatch.setenv("TAC_BACKENDS", "")
    assert registry.load().backends == {}


def test_builtin_backends_are_listed_without_importing_frameworks():
    code = ("import sys; from tac_core.cli.main import main; main(['backends']); "
            "print('LEAK', [m for m in ('torch', 'jax', 'mlx', 'flax') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LEAK []" in done.stdout
    assert "torch  available" in done.stdout


def test_import_tac_core_and_help_import_no_framework():
    code = ("import sys, tac_core, tac_core.video, tac_core.contract, tac_core.evidence\n"
            "from tac_core.cli.main import build_parser\n"
            "build_parser().format_help()\n"
            "print([m for m in ('torch', 'jax', 'mlx', 'flax') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_usage_mistakes_are_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "tac_core", "no-such-command"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "invalid choice" in done.stderr
