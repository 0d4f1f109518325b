"""The pipeline runner (cache by key, resume, ledger, --from/--until), the runs index and `tac runs`."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tac_core.cli.main import main
from tac_core.errors import InputError
from tac_core.evidence import ScoreRecord
from tac_core.pipeline import Step, describe_run, list_runs, run_pipeline


@pytest.fixture(autouse=True)
def runs_index(tmp_path, monkeypatch):
    """Every test gets its own runs index, never the user's."""
    index = tmp_path / "index" / "runs.jsonl"
    monkeypatch.setenv("TAC_RUNS_INDEX", str(index))
    return index


class Toy:
    """Three steps a -> b -> c: each writes out.txt from the one before and counts its calls."""

    def __init__(self, video: Path | None = None):
        self.calls = Counter()
        self.resumed: list[str] = []
        self.config = {"a": {"n": 1}, "b": {"lr": 0.1}, "c": {"q": "x"}}
        self.video = video

    def _step(self, name: str, before: str | None):
        def run(ctx):
            self.calls[name] += 1
            if ctx.resuming:
                self.resumed.append(name)
            upstream = (ctx.output(before) / "out.txt").read_text() if before else ""
            text = f"{upstream}{name}{json.dumps(dict(ctx.config), sort_keys=True)};"
            (ctx.dir / "out.txt").write_text(text)
            return {"chars": len(text)}
        return run

    def steps(self) -> list[Step]:
        files = [self.video] if self.video else []
        return [Step("a", self._step("a", None), self.config["a"]),
                Step("b", self._step("b", "a"), self.config["b"], files=files),
                Step("c", self._step("c", "b"), self.config["c"])]


def ledger(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]


def test_a_second_run_does_no_work(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    first = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert first.ran == ["a", "b", "c"] and toy.calls == Counter(a=1, b=1, c=1)
    second = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert second.cached == ["a", "b", "c"] and toy.calls == Counter(a=1, b=1, c=1)
    assert [s.key for s in first.steps] == [s.key for s in second.steps]
    assert second["c"].summary == first["c"].summary == {"chars": len((run / "steps/c/out.txt").read_text())}
    assert (run / "steps/c/out.txt").read_text() == 'a{"n": 1};b{"lr": 0.1};c{"q": "x"};'


def test_a_changed_config_reruns_that_step_and_later_ones_only(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    first = run_pipeline(run, toy.steps(), log=lambda _: None)
    toy.config["b"] = {"lr": 0.10000001}
    second = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert second.cached == ["a"] and second.ran == ["b", "c"]
    assert toy.calls == Counter(a=1, b=2, c=2)
    assert first["a"].key == second["a"].key
    assert first["b"].key != second["b"].key and first["c"].key != second["c"].key
    assert "0.10000001" in (run / "steps/c/out.txt").read_text()


def test_keys_ignore_key_order_and_are_the_same_in_another_folder(tmp_path):
    toy = Toy()
    toy.config["a"] = {"x": 1, "y": [1.5, "s"]}
    one = run_pipeline(tmp_path / "one", toy.steps(), log=lambda _: None)
    toy.config["a"] = {"y": [1.5, "s"], "x": 1}
    two = run_pipeline(tmp_path / "two", toy.steps(), log=lambda _: None)
    assert [s.key for s in one.steps] == [s.key for s in two.steps]
    toy.config["a"] = {"y": [1.5, "s"], "x": 1.0}          # 1.0 is another setting than 1
    three = run_pipeline(tmp_path / "three", toy.steps(), log=lambda _: None)
    assert three["a"].key != one["a"].key


def test_a_changed_input_file_reruns_from_the_step_that_declares_it(tmp_path):
    video = tmp_path / "clip.mkv"
    video.write_bytes(b"frames v1")
    toy, run = Toy(video), tmp_path / "run"
    run_pipeline(run, toy.steps(), log=lambda _: None)
    video.write_bytes(b"frames v2")
    second = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert second.cached == ["a"] and second.ran == ["b", "c"]
    video.unlink()
    with pytest.raises(InputError, match="no such file"):
        run_pipeline(run, toy.steps(), log=lambda _: None)


def test_from_step_reruns_from_there_and_until_stops(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    part = run_pipeline(run, toy.steps(), until="b", log=lambda _: None)
    assert part.ran == ["a", "b"] and toy.calls["c"] == 0 and not (run / "steps/c").exists()
    (run / "steps/b/leftover.bin").write_bytes(b"x")
    forced = run_pipeline(run, toy.steps(), from_step="b", log=lambda _: None)
    assert forced.cached == ["a"] and forced.ran == ["b", "c"]
    assert toy.calls == Counter(a=1, b=2, c=1)
    assert not (run / "steps/b/leftover.bin").exists()          # a forced step starts from a clean folder
    with pytest.raises(InputError, match=r"steps: a, b, c"):
        run_pipeline(run, toy.steps(), from_step="nope", log=lambda _: None)
    with pytest.raises(InputError, match=r"steps: a, b, c"):
        run_pipeline(run, toy.steps(), until="nope", log=lambda _: None)


def test_a_forced_rerun_of_an_earlier_step_invalidates_later_ones_even_with_until(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    run_pipeline(run, toy.steps(), log=lambda _: None)
    run_pipeline(run, toy.steps(), from_step="a", until="a", log=lambda _: None)
    again = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert again.cached == ["a"] and again.ran == ["b", "c"]     # b and c read a's new output
    assert toy.calls == Counter(a=2, b=2, c=2)


def test_a_failing_step_is_not_finished_is_in_the_ledger_and_reruns(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    steps = toy.steps()

    def broken(ctx):
        (ctx.dir / "half.txt").write_text("half")
        raise ValueError("disk on fire\nsecond line")

    steps[1] = Step("b", broken, toy.config["b"])
    with pytest.raises(ValueError, match="disk on fire"):
        run_pipeline(run, steps, log=lambda _: None)
    assert not (run / "steps/b/step.json").exists() and not (run / "steps/c").exists()
    failed = ledger(run)[-1]
    assert failed["status"] == "failed" and failed["step"] == "b" and failed["error"] == "ValueError: disk on fire"
    fixed = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert fixed.cached == ["a"] and fixed.ran == ["b", "c"]
    assert toy.resumed == ["b"] and (run / "steps/b/half.txt").exists()     # nothing it wrote is lost


def test_an_interrupted_step_resumes_in_its_own_folder(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    steps = toy.steps()
    seen = {}

    def train(ctx):
        checkpoint = ctx.dir / "checkpoint.txt"
        if not ctx.resuming:
            checkpoint.write_text("step 500")
            raise KeyboardInterrupt
        seen["checkpoint"] = checkpoint.read_text()
        (ctx.dir / "out.txt").write_text("trained")
        return {"resumed_from": seen["checkpoint"]}

    steps[1] = Step("b", train, toy.config["b"])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(run, steps, log=lambda _: None)
    assert not (run / "steps/b/step.json").exists()
    assert ledger(run)[-1]["status"] == "interrupted"
    resumed = run_pipeline(run, steps, log=lambda _: None)
    assert resumed.ran == ["b", "c"] and seen["checkpoint"] == "step 500"
    assert resumed["b"].summary == {"resumed_from": "step 500"}
    assert json.loads((run / "steps/b/step.json").read_text())["resumed"] is True


def test_an_interrupted_step_whose_key_changed_starts_clean(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    steps = toy.steps()

    def interrupted(ctx):
        (ctx.dir / "checkpoint.txt").write_text("old settings")
        raise KeyboardInterrupt

    steps[1] = Step("b", interrupted, toy.config["b"])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(run, steps, log=lambda _: None)
    toy.config["b"] = {"lr": 0.2}
    result = run_pipeline(run, toy.steps(), log=lambda _: None)
    assert result.ran == ["b", "c"] and toy.resumed == []
    assert not (run / "steps/b/checkpoint.txt").exists()


def test_a_key_change_clears_a_stale_folder(tmp_path):
    toy, run = Toy(), tmp_path / "run"
    run_pipeline(run, toy.steps(), log=lambda _: None)
    (run / "steps/c/stale.bin").write_bytes(b"old")
    toy.config["c"] = {"q": "y"}
    run_pipeline(run, toy.steps(), log=lambda _: None)
    assert not (run / "steps/c/stale.bin").exists()
    assert json.loads((run / "steps/c/step.json").read_text())["config"] == {"q": "y"}


def test_ledger_lines_and_log_lines(tmp_path):
    toy, run, lines = Toy(), tmp_path / "run", []
    first = run_pipeline(run, toy.steps(), log=lines.append)
    run_pipeline(run, toy.steps(), log=lines.append)
    events = ledger(run)
    assert [(e["step"], e["status"]) for e in events] == [("a", "ran"), ("b", "ran"), ("c", "ran"),
                                                          ("a", "cached"), ("b", "cached"), ("c", "cached")]
    assert all(e["seconds"] >= 0 and e["time"] and len(e["key"]) == 64 for e in events)
    assert events[2]["summary"] == first["c"].summary
    assert lines[0].startswith("step a: ran in ") and lines[0].endswith(" s")
    assert lines[3] == f"step a: cached (key {first['a'].key[:8]})"
    meta = json.loads((run / "run.json").read_text())
    assert meta["steps"] == ["a", "b", "c"] and meta["created"] <= meta["updated"]


def test_a_step_can_read_only_earlier_steps(tmp_path):
    def peek_ahead(ctx):
        ctx.output("b")

    with pytest.raises(InputError, match="does not come before"):
        run_pipeline(tmp_path / "run", [Step("a", peek_ahead), Step("b", lambda ctx: None)],
                     log=lambda _: None)
    with pytest.raises(InputError, match="not in this pipeline"):
        run_pipeline(tmp_path / "run2", [Step("a", lambda ctx: ctx.summary("zzz"))], log=lambda _: None)

    def reads_a(ctx):
        return {"from_a": ctx.summary("a")["n"], "a_dir": ctx.output("a").name}

    done = run_pipeline(tmp_path / "run3", [Step("a", lambda ctx: {"n": 7}), Step("b", reads_a)],
                        log=lambda _: None)
    assert done["b"].summary == {"from_a": 7, "a_dir": "a"}


@pytest.mark.parametrize("name", ["Train", "a b", "../x", "", "-lead", "x" * 65, 3])
def test_bad_step_names_are_input_errors(name):
    with pytest.raises(InputError, match="step name"):
        Step(name, lambda ctx: None)


def test_duplicate_names_and_bad_configs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="two steps are named 'a'"):
        run_pipeline(tmp_path / "run", [Step("a", lambda c: None), Step("a", lambda c: None)])
    with pytest.raises(InputError, match="not JSON"):
        Step("a", lambda c: None, {"path": Path("x")})
    with pytest.raises(InputError, match="not JSON"):
        Step("a", lambda c: None, {"lr": float("nan")})
    with pytest.raises(InputError, match="return a dict"):
        run_pipeline(tmp_path / "run", [Step("a", lambda c: 3)], log=lambda _: None)


def score_record(axis: str = "proxy", score: float = 1.25) -> ScoreRecord:
    return ScoreRecord(axis=axis, samples=600, seg=0.0123, pose=0.0456, archive_bytes=123456,
                       original_bytes=37545489, rate=0.0033, score=score, archive_sha256="ab" * 32,
                       inflated_sha256={"0.mkv": "cd" * 32}, video_sha256={"0.mkv": "ef" * 32},
                       scorer_weights_sha256={}, device="cpu", backend="torch", decode_path="pyav-cpu",
                       command="tac compress", versions={"python": "3"})


def evaluated_run(folder: Path, renderer: str, record: ScoreRecord | None) -> None:
    def evaluate(ctx):
        if record is not None:
            (ctx.dir / "score.json").write_text(record.to_json())
        return {}

    run_pipeline(folder, [Step("train", lambda ctx: {"loss": 0.5}), Step("evaluate", evaluate)],
                 meta={"renderer": renderer, "command": "tac compress x"}, log=lambda _: None)


def test_list_runs_shows_runs_with_their_scores(tmp_path, runs_index):
    evaluated_run(tmp_path / "old", "hnerv_pair", score_record("proxy", 1.25))
    evaluated_run(tmp_path / "new", "mask_warp", None)
    evaluated_run(tmp_path / "old", "hnerv_pair", score_record("proxy", 1.25))   # listed once
    evaluated_run(tmp_path / "gone", "x265", None)
    shutil.rmtree(tmp_path / "gone")
    assert len(runs_index.read_text().splitlines()) == 3
    runs = list_runs()
    assert [r.path.name for r in runs] == ["new", "old"]
    old = next(r for r in runs if r.path.name == "old")
    assert old.finished == 2 and old.steps == ["train", "evaluate"] and old.meta["renderer"] == "hnerv_pair"
    assert len(old.scores) == 1 and old.scores[0].record.score == 1.25 and old.scores[0].record.axis == "proxy"
    assert old.last_activity >= old.created


def test_finished_counts_only_a_consistent_chain(tmp_path):
    evaluated_run(tmp_path / "run", "hnerv_pair", None)
    (tmp_path / "run/steps/train/step.json").unlink()
    assert describe_run(tmp_path / "run").finished == 0


def test_tac_runs_table_and_json(tmp_path, capsys):
    evaluated_run(tmp_path / "run1", "hnerv_pair", score_record("stand-in", 2.5))
    assert main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run", "folder", "created", "(UTC)", "steps", "method", "score", "seg", "pose",
                              "bytes", "axis"]
    row = out[2]
    assert str(tmp_path / "run1") in row and "2/2" in row and "hnerv_pair" in row
    assert "2.5000" in row and "123,456" in row and row.endswith("stand-in")
    assert main(["runs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["finished"] == 2 and data[0]["total"] == 2
    assert data[0]["scores"][0]["record"]["axis"] == "stand-in"


def test_tac_runs_reports_an_unreadable_score_and_bad_folders(tmp_path, capsys):
    evaluated_run(tmp_path / "run1", "hnerv_pair", None)
    (tmp_path / "run1/steps/evaluate/score.json").write_text('{"axis": "contest-CPU"')
    assert main(["runs", str(tmp_path / "run1")]) == 0
    out = capsys.readouterr().out
    assert "unreadable score.json" in out
    assert main(["runs", str(tmp_path / "not-a-run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "run folder not found" in err


def test_tac_runs_with_no_runs_is_friendly(capsys):
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.startswith("no runs yet")
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_score_copied_to_the_output_folder_is_listed_once(tmp_path):
    out = tmp_path / "submission"
    out.mkdir()
    (out / "score.json").write_text(score_record("proxy", 3.0).to_json())
    run_pipeline(tmp_path / "run", [Step("evaluate", lambda ctx: (ctx.dir / "score.json").write_text(
        score_record("proxy", 3.0).to_json()) and {})], meta={"output": str(out)}, log=lambda _: None)
    assert [s.record.score for s in describe_run(tmp_path / "run").scores] == [3.0]
    (out / "score.json").write_text(score_record("proxy", 2.0).to_json())      # a different record: both
    assert sorted(s.record.score for s in describe_run(tmp_path / "run").scores) == [2.0, 3.0]
