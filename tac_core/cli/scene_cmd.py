"""``tac scene``: write a synthetic driving clip (HEVC) and its ground truth (``<stem>.npz``)."""

from __future__ import annotations

import json
from pathlib import Path

from tac_core.registry import Command


def _configure(parser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="clip to write (.mkv or .mp4); the ground truth goes beside it as <stem>.npz")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed; equal seeds give equal clips (default 0)")
    parser.add_argument("--crf", type=int, default=None, help="x265 constant rate factor (default 18)")
    parser.add_argument("--preset", default=None, help="x265 preset (default fast)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(args) -> int:
    from tac_core.progress import progress

    from tac_core.scenes import SceneConfig, write_clip
    from tac_core.scenes.clip import DEFAULT_CRF, DEFAULT_PRESET

    config = SceneConfig(seed=args.seed, seconds=args.seconds)
    crf = DEFAULT_CRF if args.crf is None else args.crf
    preset = DEFAULT_PRESET if args.preset is None else args.preset
    with progress(total=config.frames, unit="frame", desc="scene", disable=args.quiet) as bar:
        result = write_clip(args.output, config, crf=crf, preset=preset, progress=bar.update)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"wrote {result['video']} ({result['frames']} frames, {result['video_bytes']:,} bytes, "
              f"{result['seconds']:.1f} s) and {result['ground_truth']}")
    return 0


def commands() -> list[Command]:
    return [Command("scene", "write a synthetic driving clip and its ground truth (class maps, poses)",
                    _configure, _run)]
