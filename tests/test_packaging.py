"""The package list in pyproject.toml names every package in the tree (an installed tac is complete),
and the quick start's Makefile refuses to start a virtual environment the disk cannot hold."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    renamed = {v: k for k, v in config.get("package-dir", {}).items()}
    roots = {name.split(".")[0] for name in listed} - set(renamed.values()) | set(renamed)
    found = set()
    for root in roots:                 # the package trees only: never build outputs such as demo-out/
        for init in (ROOT / root).glob("**/__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add(".".join((renamed.get(rel.parts[0], rel.parts[0]), *rel.parts[1:])))
    assert found == listed


def test_package_data_files_exist():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, patterns in config["package-data"].items():
        folder = ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"



needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_refuses_a_venv_the_disk_cannot_hold(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    (tmp_path / "pyproject.toml").touch()
    run = subprocess.run(["make", "venv", "VENV_GB=1e9", f"PYTHON={sys.executable}"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "needs about 1e+09 GiB of free disk" in run.stderr
    assert not (tmp_path / ".venv").exists()


@needs_make
def test_make_goes_on_where_the_disk_has_room(tmp_path):
    # -n prints the recipe without running it, except lines marked ``+``: mark the check's line so it runs
    shutil.copy(ROOT / "Makefile", tmp_path)
    text = (tmp_path / "Makefile").read_text()
    check = "\ttest -x $(PY) || $(PYTHON) -c \"$$DISK_CHECK\""
    assert text.count(check) == 1
    (tmp_path / "Makefile").write_text(text.replace(check, "\t+" + check[1:]))
    (tmp_path / "pyproject.toml").touch()
    run = subprocess.run(["make", "-n", "venv", "VENV_GB=0", f"PYTHON={sys.executable}"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "-m venv .venv" in run.stdout
