"""The inflate runtime on hnerv_pair members: bit-exact frames, odd frame counts, a full submission
through its own inflate.sh in a Python without tac, and a full disk."""

import errno

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core import contract, harness, video  # noqa: E402
from tac_runtime import hnerv, inflate, rawout  # noqa: E402
from tac_torch import renderers  # noqa: E402
from tac_torch.export import build_archive, export_submission, read_model  # noqa: E402

TINY = renderers.make_spec(stages=2, out_h=16, out_w=24, latent_dim=6, width_0=4, width_1=6, width_2=5)


def member(tmp_path, frames, name="0"):
    pairs = -(-frames // 2)
    model = renderers.HnervPair(TINY, seed=3).eval()
    path = tmp_path / f"{name}.tac"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_archive(model, renderers.init_latents(pairs, TINY, seed=4) * 30, frames))
    return path


def expected_frames(path):
    """What the renderer itself makes of the archive (``Renderer.render``): what an inflate must equal."""
    model, latents, frames = read_model(path.read_bytes())[:3]
    pairs = renderers.HnervPairRenderer(model.spec).render(model.arrays(), {renderers.LATENTS: latents.numpy()},
                                                           range(len(latents)))
    return pairs.reshape(-1, *contract.CAMERA_HW, 3)[:frames]


@pytest.mark.parametrize("frames", [6, 5])
def test_inflate_reproduces_the_renderer_bit_for_bit(tmp_path, monkeypatch, frames):
    monkeypatch.setattr(renderers, "RENDER_BATCH", 2)   # several batches, the last one short
    path = member(tmp_path, frames)
    out = tmp_path / "0.raw"
    assert hnerv.inflate_member(path, out) == frames
    assert out.stat().st_size == frames * contract.FRAME_BYTES
    assert np.array_equal(video.open_raw(out), expected_frames(path))


def test_inflate_dispatches_by_member_suffix(tmp_path, capsys):
    member(tmp_path / "archive", 3, name="clip")
    names = tmp_path / "names.txt"
    names.write_text("clip.mkv\n")
    assert inflate.main([str(tmp_path / "archive"), str(tmp_path / "out"), str(names)]) == 0
    assert "clip.mkv: 3 frames" in capsys.readouterr().out
    assert (tmp_path / "out" / "clip.raw").stat().st_size == 3 * contract.FRAME_BYTES


class _FullDisk:
    """A file whose writes fail as they do on a full disk."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(bytes(data)[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_full_disk_is_one_line_exit_2_and_no_raw_left(tmp_path, monkeypatch, capsys):
    member(tmp_path / "archive", 6)
    names = tmp_path / "names.txt"
    names.write_text("0.mkv\n")
    monkeypatch.setattr(rawout, "open", lambda *a, **k: _FullDisk(open(*a, **k)), raising=False)
    monkeypatch.setattr(inflate, "INFLATERS", {**inflate.INFLATERS, ".tac": hnerv.inflate_member})
    assert inflate.main([str(tmp_path / "archive"), str(tmp_path / "out"), str(names)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"inflate: error: {tmp_path / 'out' / '0.raw'}: writing inflated frames failed: the disk is full"]
    assert list((tmp_path / "out").iterdir()) == []


def test_exported_submission_runs_like_the_official_harness_and_scores(tmp_path, small_clip, python_without_tac):
    from tac_torch.evaluate import evaluate
    from tac_torch.scorers import load_scorers

    model = renderers.HnervPair(TINY, seed=5).eval()
    latents = renderers.init_latents(3, TINY, seed=6) * 30
    sub = export_submission(tmp_path / "submissions" / "hnerv", model, latents, 6, video_name=small_clip.name)
    raws = harness.run_inflate(sub, [small_clip.name], python=python_without_tac, cwd=tmp_path)
    raw = raws[small_clip.name]
    assert raw.name == "clip.raw" and raw.stat().st_size == 6 * contract.FRAME_BYTES
    assert np.array_equal(video.open_raw(raw), expected_frames(sub / "archive" / "clip.tac"))
    result = evaluate(sub, small_clip.parent, load_scorers("stand-in", seed=0), cache_dir=tmp_path / "cache",
                      show_progress=False)
    c = result.components
    assert c.samples == 3 and c.seg > 0 and np.isfinite(c.score)
    assert (sub / "score.json").is_file()


def test_a_python_without_torch_is_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import zipfile

    from conftest import bare_python

    fake = tmp_path / "no-torch" / "torch"              # what `import torch` meets where torch is missing
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    launcher = bare_python(tmp_path, first=(fake.parent,))         # the fake first: torch is "missing"
    model = renderers.HnervPair(TINY, seed=5).eval()
    sub = export_submission(tmp_path / "sub", model, renderers.init_latents(2, TINY, seed=6) * 30, 4,
                            video_name="clip.mkv")
    zipfile.ZipFile(sub / contract.ARCHIVE_NAME).extractall(tmp_path / "archive")
    (tmp_path / "names.txt").write_text("clip.mkv\n")
    run = subprocess.run(["bash", str(sub / "inflate.sh"), str(tmp_path / "archive"), str(tmp_path / "out"),
                          str(tmp_path / "names.txt")], env={**os.environ, "PYTHON": str(launcher)},
                         capture_output=True, text=True, cwd=tmp_path)
    err = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(err) == 1, run.stderr
    assert err[0].startswith("inflate: error: ") and "cannot import torch" in err[0] and "PYTHON=" in err[0]
    assert not (tmp_path / "out" / "clip.raw").exists()


def test_camera_pairs_uint8_equals_the_training_chains_rounded_frames():
    from tac_torch.frames import camera_frames, camera_pairs_uint8

    gen = torch.Generator().manual_seed(0)
    for hw in ((20, 30), (874 // 8, 1164 // 8)):
        pairs = torch.rand(3, 2, 3, *hw, generator=gen) * 300 - 20       # beyond 0..255 and half-way values
        pairs[0, 0, 0, 0, :4] = torch.tensor([0.5, 1.5, 2.5, 254.5])
        for size in ((40, 50), hw):
            expected = camera_frames(pairs, size).to(torch.uint8).permute(0, 1, 3, 4, 2).contiguous()
            assert torch.equal(camera_pairs_uint8(pairs, size), expected)


def test_a_damaged_member_is_one_line_and_exit_2(tmp_path, capsys):
    path = member(tmp_path / "archive", 4)
    path.write_bytes(path.read_bytes()[:-7])
    names = tmp_path / "names.txt"
    names.write_text("0.mkv\n")
    assert inflate.main([str(tmp_path / "archive"), str(tmp_path / "out"), str(names)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("inflate: error:") and "truncated" in err[0]
    assert not (tmp_path / "out" / "0.raw").exists()
