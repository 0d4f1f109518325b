"""Only a full official run may carry a contest axis; code decides, not the caller."""

import json

import pytest

from tac_core import contract, evidence
from tac_core.errors import EvidenceError

FULL = dict(scorer_kind="contest", weights_verified=True, video_sha256=contract.CONTEST_VIDEO_SHA256,
            samples=600, video_samples=600, decode_path=evidence.DECODE_CPU, device="cpu", backend="torch")


def axis(**changes):
    return evidence.axis_for(**{**FULL, **changes})


def test_a_full_official_cpu_run_is_contest_cpu(monkeypatch):
    monkeypatch.setattr(evidence.sys, "platform", "linux")
    assert axis() == evidence.CONTEST_CPU
    assert axis(decode_path=evidence.DECODE_DALI, device="cuda") == evidence.CONTEST_CUDA


@pytest.mark.parametrize("changes, expected", [
    ({"scorer_kind": "stand-in"}, evidence.STAND_IN),
    ({"scorer_kind": "proxy"}, evidence.PROXY),
    ({"weights_verified": False}, evidence.UNVERIFIED),
    ({"samples": 599}, evidence.OFFICIAL_SCORERS),
    ({"video_sha256": "0" * 64}, evidence.OFFICIAL_SCORERS),
    ({"decode_path": evidence.DECODE_DALI}, evidence.OFFICIAL_SCORERS),   # DALI frames on a CPU run
    ({"backend": "mlx"}, evidence.MLX_SIGNAL),
])
def test_anything_less_is_labelled_for_what_it_is(monkeypatch, changes, expected):
    monkeypatch.setattr(evidence.sys, "platform", "linux")
    assert axis(**changes) == expected


def test_macos_cpu_is_advisory(monkeypatch):
    monkeypatch.setattr(evidence.sys, "platform", "darwin")
    assert axis() == evidence.MACOS_CPU


def test_records_round_trip_and_refuse_unknown_axes():
    rec = evidence.ScoreRecord(axis=evidence.STAND_IN, samples=3, seg=0.1, pose=0.2, archive_bytes=10,
                               original_bytes=100, rate=0.1, score=1.0, archive_sha256="a",
                               inflated_sha256={}, video_sha256={}, scorer_weights_sha256={}, device="cpu",
                               backend="torch", decode_path=evidence.DECODE_CPU, command="tac evaluate")
    assert evidence.ScoreRecord.from_json(rec.to_json()) == rec
    assert json.loads(rec.to_json())["versions"]["python"]
    with pytest.raises(EvidenceError):
        evidence.ScoreRecord(**{**json.loads(rec.to_json()), "axis": "contest-ish"})
