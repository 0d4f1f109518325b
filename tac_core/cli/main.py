"""Entry point of ``tac``. Subcommands come from plug-ins through ``tac_register_commands``.

A command named ``"archive inspect"`` becomes ``tac archive inspect``. Any
``TacError`` becomes one line on stderr and exit code 2; so does a usage
mistake. Building the parser imports no ML framework.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from tac_core import registry
from tac_core.errors import TacError

USAGE_EXIT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(USAGE_EXIT)


def _version() -> str:
    try:
        return metadata.version("tac")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from tac_core.cli import builtin

    builtin.ensure_registered()

    parser = _Parser(prog="tac", description="Task-Aware Compression: video for frozen task networks.")
    parser.add_argument("--version", action="version", version=f"tac {_version()}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    commands = dict(registry.load().commands)
    for name in sorted(commands):
        cmd = commands[name]
        words = name.split()
        container = top
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group = container.add_parser(word, help=f"{word} commands")
                groups[key] = group.add_subparsers(dest=f"sub_{depth}", metavar="SUBCOMMAND",
                                                   parser_class=_Parser)
                group.set_defaults(_group_parser=group)
            container = groups[key]
        sub = container.add_parser(words[-1], help=cmd.help, description=cmd.help)
        cmd.configure(sub)
        sub.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        (getattr(args, "_group_parser", None) or parser).print_help(sys.stderr)
        return USAGE_EXIT
    try:
        code = run(args)
    except TacError as exc:
        sys.stderr.write(f"tac: error: {exc}\n")
        return USAGE_EXIT
    except KeyboardInterrupt:
        sys.stderr.write("tac: interrupted\n")
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
