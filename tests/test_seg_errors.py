"""benchmarks/seg_errors.py: the distance to a class boundary and the report's bins."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "seg_errors.py"
_spec = importlib.util.spec_from_file_location("seg_errors", _PATH)
seg_errors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seg_errors)


def test_boundary_distance_counts_steps_from_the_edge():
    maps = np.zeros((1, 3, 10), np.uint8)
    maps[:, :, 5:] = 1                              # a vertical edge between columns 4 and 5
    got = seg_errors.boundary_distance(maps, limit=3)[0, 0]
    assert got.tolist() == [3, 3, 2, 1, 0, 0, 1, 2, 3, 3]
    assert (seg_errors.boundary_distance(np.zeros((2, 4, 4), np.uint8)) == seg_errors.MAX_DISTANCE).all()


def test_analyse_puts_each_error_in_its_bins():
    target = np.zeros((2, 4, 8), np.uint8)
    target[:, :, 4:] = 1
    rendered = target.copy()
    rendered[0, 0, 4] = 0                           # one error on the boundary, where the margin is small
    rendered[1, 3, 0] = 2                           # one far from it, where the margin is large
    margin = np.full(target.shape, 9.0)
    margin[0, 0, 4] = 0.2
    lines = seg_errors.analyse(rendered, target, margin)
    assert lines[0].startswith("seg disagreement 0.031250 (2 pixels")
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ") and "%" in line}
    assert table["0"][1] == "50.00%" and table[">=3"][1] == "50.00%"
    assert table["0-0.5"][1] == "50.00%" and table[">=4"][1] == "50.00%"
    assert "1->0 50.0%" in lines[-2] and "0->2 50.0%" in lines[-2]
    assert lines[-1].endswith("rows top/middle/bottom: 50%/0%/50%")
