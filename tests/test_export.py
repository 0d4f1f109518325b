"""hnerv_pair export: model file <-> archive <-> the decoder the runtime rebuilds, and ``tac export``."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core import contract  # noqa: E402
from tac_core.archive import QuantSpec, read_archive, unpack_zip  # noqa: E402
from tac_core.cli.main import main  # noqa: E402
from tac_core.errors import ArchiveError, InputError  # noqa: E402
from tac_torch import renderers  # noqa: E402
from tac_torch.export import (LATENT_SPEC, build_archive, export_submission, load_model_file,  # noqa: E402
                              member_name, read_model, save_model_file)
from tac_torch.quant import quantize_values, weight_specs  # noqa: E402

TINY = renderers.make_spec(stages=2, out_h=16, out_w=24, latent_dim=6, width_0=4, width_1=6, width_2=5)


def tiny_model(pairs=3, seed=1):
    model = renderers.HnervPair(TINY, seed=seed).eval()
    return model, renderers.init_latents(pairs, TINY, seed=seed + 1) * 20


def test_archive_holds_the_fake_quantised_model_and_the_frame_count():
    model, latents = tiny_model()
    data = build_archive(model, latents, 5)
    archive = read_archive(data)
    assert archive.architecture.id == renderers.SPEC_ID
    assert dict(archive.architecture.params) == {**TINY, "frames": 5}
    assert archive.quantized[renderers.LATENTS].spec == LATENT_SPEC
    back, lat, frames, bias, field = read_model(data)
    assert bias is None and field is None
    assert frames == 5 and lat.shape == (3, TINY["latent_dim"])
    specs = weight_specs(model)
    for name, p in model.named_parameters():          # what QAT trains is what the archive holds
        assert torch.equal(back.state_dict()[name], quantize_values(p, specs[name])), name
    assert torch.equal(lat, quantize_values(latents, LATENT_SPEC))


def test_default_topology_is_stored_by_position():
    spec = renderers.make_spec(out_h=64, out_w=128, width_0=2, width_1=2, width_2=2, width_3=2, width_4=2,
                               width_5=2, width_6=2, latent_dim=4)
    model = renderers.HnervPair(spec, seed=0)
    data = build_archive(model, renderers.init_latents(2, spec), 4)
    assert read_archive(data).by_position
    assert read_model(data)[2] == 4


def test_frame_count_must_match_the_latents():
    model, latents = tiny_model(pairs=3)
    for frames in (4, 7, 0):
        with pytest.raises(InputError, match="frame"):
            build_archive(model, latents, frames)


def test_read_model_refuses_other_archives():
    from tac_core.archive import write_archive

    with pytest.raises(ArchiveError, match="hnerv_pair"):
        read_model(write_archive({"x": np.zeros(3, np.float32)}))


def test_model_file_round_trips_and_keeps_extra_keys(tmp_path):
    model, latents = tiny_model()
    path = save_model_file(tmp_path / "m.pt", model, latents, 6, extra={"step": 12})
    back, lat, frames, bias, field = load_model_file(path)
    assert bias is None and field is None
    assert frames == 6 and torch.equal(lat, latents)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    assert torch.load(path, weights_only=True)["step"] == 12


def test_member_name_maps_a_video_to_its_raw_stem():
    assert member_name("0.mkv") == "0.tac" and member_name("clip.hevc") == "clip.tac"
    with pytest.raises(InputError):
        member_name("a/b.mkv")


def test_export_submission_folder(tmp_path):
    model, latents = tiny_model()
    out = export_submission(tmp_path / "sub", model, latents, 6, video_name="clip.mkv")
    assert sorted(p.name for p in out.iterdir()) == ["archive.zip", "inflate.py", "inflate.sh", "runtime",
                                                      "tac_core", "tac_torch"]
    assert sorted(p.name for p in (out / "tac_torch").iterdir()) == ["__init__.py", "archive_io.py", "frames.py",
                                                                     "mask_warp.py", "mask_warp_io.py",
                                                                     "renderers.py"]
    unpack_zip((out / contract.ARCHIVE_NAME).read_bytes(), tmp_path / "a")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["clip.tac"]


def _cli_fails(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tac: error:")
    return err[0]


def test_tac_export_command(tmp_path, capsys):
    model, latents = tiny_model()
    save_model_file(tmp_path / "m.pt", model, latents, 6)
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "sub")]) == 0
    assert "6 frames of 0.mkv" in capsys.readouterr().out
    assert (tmp_path / "sub" / "archive.zip").is_file()


def test_tac_export_carries_the_sidecars_of_the_model_file(tmp_path):
    model, latents = tiny_model()
    bias, field = torch.zeros(3, 2, 3, dtype=torch.int8), torch.zeros(3, 3, 3, 4, dtype=torch.int8)
    bias[0, 1, 2], field[1, 0, 2, 3] = 4, -9
    save_model_file(tmp_path / "m.pt", model, latents, 6, output_bias=bias, pose_field=field)
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "sub")]) == 0
    unpack_zip((tmp_path / "sub" / contract.ARCHIVE_NAME).read_bytes(), tmp_path / "a")
    back = read_model((tmp_path / "a" / "0.tac").read_bytes())
    assert torch.equal(back.output_bias, bias) and torch.equal(back.pose_field, field)


def test_tac_export_refuses_bad_model_files_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sub"
    assert "no model file" in _cli_fails(capsys, ["export", str(tmp_path / "none.pt"), "-o", str(out)])
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    assert "not a readable model file" in _cli_fails(capsys, ["export", str(tmp_path / "bad.pt"), "-o", str(out)])
    torch.save({"spec": TINY, "frames": 2}, tmp_path / "partial.pt")
    assert "lacks decoder, latents" in _cli_fails(capsys, ["export", str(tmp_path / "partial.pt"), "-o", str(out)])
    model, latents = tiny_model()
    torch.save({"spec": TINY, "decoder": model.state_dict(), "latents": latents, "frames": 9},
               tmp_path / "mismatch.pt")
    assert "latents" in _cli_fails(capsys, ["export", str(tmp_path / "mismatch.pt"), "-o", str(out)])
    assert not out.exists()


def test_latent_spec_is_per_dimension():
    assert LATENT_SPEC == QuantSpec("int8_sym", axis=1)
