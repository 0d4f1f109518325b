"""The inflate runtime: archive members -> ``.raw`` frames, with the contest environment's packages only.

It ships inside every submission folder (as ``runtime/``, beside a vendored subset of
``tac_core``); installed with tac it is importable as ``tac_runtime``. It uses only
numpy, torch, PyAV and the standard library, plus tac_core modules that need no more.
"""

__all__ = ["inflate"]
