"""The package list in pyproject.toml names every package in the tree (an installed tac is complete)."""

import tomllib
from pathlib import Path

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
