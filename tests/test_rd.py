"""benchmarks/rd.py: the ladder given on the command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "rd.py"
_spec = importlib.util.spec_from_file_location("rd", _PATH)
rd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rd)


def test_ladder_points_group_by_family_in_order():
    got = rd.parse_ladder(["av1:50@0.45", "x265:30@0.6", "av1:45@0.35"])
    assert got == {"av1": [(50, 0.45), (45, 0.35)], "x265": [(30, 0.6)]}


@pytest.mark.parametrize("point", ["av1:50", "av1@0.45", "tac:1@0.5", "vp9:30@0.5", "av1:x@0.5", "av1:50@0",
                                   "av1:50@1.5", "av1:50@half"])
def test_malformed_ladder_points_are_refused_by_name(point):
    with pytest.raises(ValueError, match="ladder point"):
        rd.parse_ladder([point])
