"""The ``tac`` command line: core commands plus those plug-ins register."""

from tac_core.cli.main import main

__all__ = ["main"]
