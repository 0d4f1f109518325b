"""`tac compress`, the main job, end to end."""

import json

import pytest

from tac_core.cli.main import main


def test_missing_video_and_bad_steps_are_one_line_errors(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "none.mkv"), "-o", str(tmp_path / "out"), "--stand-in"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.mkv: video not found" in err[0]
    assert main(["compress", "-o", str(tmp_path / "out"), "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


def test_unknown_preset_is_refused_before_any_work(tmp_path, small_clip, capsys):
    assert main(["compress", str(small_clip), "-o", str(tmp_path / "out"), "--stand-in",
                 "--preset", "no-such-preset"]) == 2
    assert "no-such-preset" in capsys.readouterr().err


def test_classical_method_prints_a_labelled_table(tmp_path, small_clip, capsys):
    out = tmp_path / "out"
    assert main(["compress", str(small_clip), "-o", str(out), "--method", "x265", "--stand-in"]) == 0
    text = capsys.readouterr().out
    assert "x265 crf30 x0.45" in text and "stand-in" in text
    assert json.loads((out / "score.json").read_text())["axis"] == "stand-in"
    assert (out / "inflated" / "clip.raw").stat().st_size == 6 * 874 * 1164 * 3


@pytest.mark.slow
def test_demo_preset_end_to_end_on_a_short_clip(tmp_path, small_clip, capsys):
    out = tmp_path / "out"
    assert main(["compress", str(small_clip), "-o", str(out), "--preset", "demo", "--steps", "2",
                 "--stand-in"]) == 0
    text = capsys.readouterr().out
    assert "hnerv_pair demo" in text and "x265 baseline_fast" in text and "score ratio" in text
    record = json.loads((out / "score.json").read_text())
    assert record["samples"] == 3 and record["axis"] == "stand-in"
    assert record["archive_bytes"] == (out / "archive.zip").stat().st_size
    assert (out / "inflated" / "clip.raw").stat().st_size == 6 * 874 * 1164 * 3
