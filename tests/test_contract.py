import math

import pytest

from tac_core import contract


def test_score_reproduces_public_baseline_row():
    c = contract.Components(samples=600, seg=9.47e-3, pose=0.380, archive_bytes=2_244_900,
                            original_bytes=contract.CONTEST_VIDEO_BYTES)
    assert round(c.score, 2) == 4.39


def test_score_reproduces_public_best_row():
    c = contract.Components(samples=600, seg=5.60e-4, pose=3.29e-5, archive_bytes=178_258,
                            original_bytes=contract.CONTEST_VIDEO_BYTES)
    assert round(c.score, 3) == 0.193
    assert round(contract.score(6.12e-4, 3.49e-5, 178_417 / contract.CONTEST_VIDEO_BYTES), 3) == 0.199


def test_score_terms_add_up_and_weigh_as_documented():
    terms = contract.score_terms(0.01, 0.1, 0.2)
    assert terms == pytest.approx({"seg": 1.0, "pose": 1.0, "rate": 5.0})
    assert sum(terms.values()) == pytest.approx(contract.score(0.01, 0.1, 0.2))


def test_pairs_and_batches_follow_the_contest():
    assert contract.sample_count(1200) == 600
    assert contract.sample_count(7) == 3
    assert contract.sample_frames(3) == (6, 7)
    bs = list(contract.batches(600))
    assert len(bs) == 38 and bs[-1].count == 600 - 37 * 16
    assert bs[1].frame_range == range(32, 64)
    assert sum(b.count for b in bs) == 600
    with pytest.raises(ValueError):
        list(contract.batches(10, 0))


def test_report_lines_match_the_official_format():
    c = contract.Components(samples=600, seg=0.000612, pose=3.49e-5, archive_bytes=178_417,
                            original_bytes=37_545_489)
    lines = contract.report_lines(c)
    assert lines[0] == "=== Evaluation results over 600 samples ==="
    assert lines[1] == "  Average PoseNet Distortion: 0.00003490"
    assert lines[2] == "  Average SegNet Distortion: 0.00061200"
    assert lines[3] == "  Submission file size: 178,417 bytes"
    assert lines[4] == "  Original uncompressed size: 37,545,489 bytes"
    assert lines[5] == f"  Compression Rate: {178417 / 37545489:.8f}"
    assert lines[6].endswith(f"= {c.score:.2f}") and "\u221a(10*posenet_dist)" in lines[6]


def test_contest_equivalent_rate_denominator():
    assert contract.contest_equivalent_original_bytes(1200) == contract.CONTEST_VIDEO_BYTES
    assert math.isclose(contract.contest_equivalent_original_bytes(200), contract.CONTEST_VIDEO_BYTES / 6)
