"""`tac compress`, the main job, end to end."""

import json
from importlib import resources

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
    record = json.loads((out / "score.json").read_text())
    assert record["axis"] == "stand-in" and record["samples"] == 3 and "clip.mkv" in record["inflated_sha256"]
    assert (out / "archive.zip").stat().st_size == record["archive_bytes"]


def _ledger(run_dir):
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


def test_a_rerun_does_no_work_and_from_redoes_the_later_steps(tmp_path, small_clip, capsys):
    out = tmp_path / "out"
    args = ["compress", str(small_clip), "-o", str(out), "--method", "x265", "--stand-in"]
    assert main(args) == 0
    first = capsys.readouterr().out
    run = out / "work" / "x265"
    n = len(_ledger(run))
    assert main(args) == 0
    assert capsys.readouterr().out == first                       # the same table, from the cache
    assert [e["status"] for e in _ledger(run)[n:]] == ["cached", "cached"]
    assert main([*args, "--from", "evaluate"]) == 0
    assert [(e["step"], e["status"]) for e in _ledger(run)[n + 2:]] == [("encode", "cached"), ("evaluate", "ran")]
    assert main([*args[:3], str(tmp_path / "fresh"), *args[4:], "--from", "nonsense"]) == 2
    assert "--from nonsense: x265 has no such step" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()                      # refused before any output


@pytest.mark.slow
def test_demo_preset_end_to_end_on_a_short_clip(tmp_path, small_clip, capsys):
    # the proxy scorers (small networks) keep the end-to-end runs within CI's time
    out = tmp_path / "out"
    assert main(["compress", str(small_clip), "-o", str(out), "--renderer", "hnerv_pair", "--preset", "demo",
                 "--steps", "2", "--proxy"]) == 0
    text = capsys.readouterr().out
    assert "hnerv_pair demo" in text and "x265 baseline_fast" in text and "score ratio" in text
    record = json.loads((out / "score.json").read_text())
    assert record["samples"] == 3 and record["axis"] == "proxy"
    assert record["archive_bytes"] == (out / "archive.zip").stat().st_size
    steps = [e["step"] for e in _ledger(out / "work" / "hnerv_pair") if e["status"] == "ran"]
    assert steps == ["targets", "train", "tto", "sidecar", "pose_field", "package", "evaluate"]
    # a changed refinement setting redoes tto and what follows, never the training
    recipe = tmp_path / "demo2.toml"
    text = resources.files("tac_torch").joinpath("presets", "demo.toml").read_text()
    assert "[tto]\nenabled = false" in text
    recipe.write_text(text.replace("[tto]\nenabled = false", "[tto]\nenabled = true"))    # TTO on
    n = len(_ledger(out / "work" / "hnerv_pair"))
    assert main(["compress", str(small_clip), "-o", str(out), "--renderer", "hnerv_pair", "--preset", str(recipe),
                 "--steps", "2", "--proxy", "--no-baseline"]) == 0
    again = [(e["step"], e["status"]) for e in _ledger(out / "work" / "hnerv_pair")[n:]]
    assert again == [("targets", "cached"), ("train", "cached"), ("tto", "ran"), ("sidecar", "ran"),
                     ("pose_field", "ran"), ("package", "ran"), ("evaluate", "ran")]


@pytest.mark.slow
def test_mask_warp_runs_its_whole_pipeline_end_to_end(tmp_path, small_clip, capsys):
    out = tmp_path / "out"
    assert main(["compress", str(small_clip), "-o", str(out), "--steps", "2",      # mask_warp: the default
                 "--proxy", "--no-baseline"]) == 0
    assert "mask_warp demo" in capsys.readouterr().out
    record = json.loads((out / "score.json").read_text())
    assert record["samples"] == 3 and record["axis"] == "proxy"
    assert record["archive_bytes"] == (out / "archive.zip").stat().st_size
    steps = [e["step"] for e in _ledger(out / "work" / "mask_warp") if e["status"] == "ran"]
    assert steps == ["targets", "train", "lowbit", "maps", "tto", "finetune", "sidecar", "pose_field", "package",
                     "evaluate"]
    # the preset leaves the output-bias search off (its step records no NaN); switched on, it and what
    # follows run again, training is kept
    preset = tmp_path / "bias.toml"
    text = resources.files("tac_torch").joinpath("presets", "mask_warp_demo.toml").read_text()
    assert "[sidecar]\nenabled = false\n" in text
    preset.write_text(text.replace("[sidecar]\nenabled = false\n", "[sidecar]\nenabled = true\n"))
    n = len(_ledger(out / "work" / "mask_warp"))
    assert main(["compress", str(small_clip), "-o", str(out), "--preset", str(preset), "--steps", "2", "--proxy",
                 "--no-baseline"]) == 0
    again = {e["step"]: e["status"] for e in _ledger(out / "work" / "mask_warp")[n:]}
    assert again["train"] == "cached" and again["sidecar"] == again["pose_field"] == again["evaluate"] == "ran"
