"""The source's own hygiene: lines of at most 120 columns, and nothing pyflakes finds (unused
imports, undefined names) except on lines that say ``# noqa`` (re-exports, imports for their
side effects)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tac_core", "tac_torch", "tac_jax", "tac_mlx", "runtime", "benchmarks", "tests")
MAX_COLUMNS = 120


def sources() -> list[Path]:
    return sorted(p for d in PACKAGES for p in (ROOT / d).rglob("*.py") if "golden" not in p.parts)


def test_the_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in sources()}
    assert {"tac_core/contract.py", "tac_torch/losses.py", "tests/test_source.py"} <= names


def test_no_line_is_longer_than_120_columns():
    long = [f"{p.relative_to(ROOT)}:{i}: {len(line)} columns"
            for p in sources() for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > MAX_COLUMNS]
    assert not long, "\n".join(long)


def test_pyflakes_finds_nothing_unmarked():
    from pyflakes import api
    from pyflakes import reporter as pyflakes_reporter

    class Collect(pyflakes_reporter.Reporter):
        def __init__(self):
            self.found = []

        def unexpectedError(self, filename, msg):
            self.found.append(f"{filename}: {msg}")

        def syntaxError(self, filename, msg, lineno, offset, text):
            self.found.append(f"{filename}:{lineno}: {msg}")

        def flake(self, message):
            self.found.append(message)

    found = []
    for path in sources():
        text = path.read_text()
        lines = text.splitlines()
        report = Collect()
        api.check(text, str(path.relative_to(ROOT)), report)
        for m in report.found:
            if isinstance(m, str):
                found.append(m)
            elif "# noqa" not in lines[m.lineno - 1]:
                found.append(str(m))
    assert not found, "\n".join(found)
