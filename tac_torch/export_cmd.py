"""``tac export MODEL.pt -o OUT``: a trained ``hnerv_pair`` model file -> a contest submission folder."""

from __future__ import annotations

from pathlib import Path

from tac_core import contract
from tac_core.registry import Command


def _configure(parser) -> None:
    parser.add_argument("model", type=Path, help="model file written by training (spec, decoder, latents, frames)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="submission folder to write")
    parser.add_argument("--video-name", default=contract.CONTEST_VIDEO_NAME,
                        help=f"the video this model encodes: its inflate writes <stem>.raw "
                             f"(default {contract.CONTEST_VIDEO_NAME})")


def _run(args) -> int:
    from tac_torch.export import export_submission, load_model_file, member_name

    member_name(args.video_name)                        # checked before the model is read
    m = load_model_file(args.model)
    out = export_submission(args.output, m.model, m.latents, m.frames, video_name=args.video_name,
                            output_bias=m.output_bias, pose_field=m.pose_field)
    size = (out / contract.ARCHIVE_NAME).stat().st_size
    print(f"{out}: {contract.ARCHIVE_NAME} {size:,} bytes, {m.frames} frames of {args.video_name}")
    return 0


def commands() -> list[Command]:
    return [Command("export", "write a submission folder (archive.zip, inflate.sh, runtime) from a model file",
                    _configure, _run)]
