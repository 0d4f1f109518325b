#!/usr/bin/env bash
# Does tac's GPU path work here, and how fast is a training step? Its parts, run apart, took about
# 2 minutes on one H200 (8 and 32 pairs a step not timed together); 8 minutes on 2 CPU cores with
# PAIRS=1 STEPS=1.
#
#   bash benchmarks/cuda_check.sh OUT [DEVICE]        DEVICE: cuda (default), cuda:N, cpu
#   PYTHON=.venv/bin/python bash benchmarks/cuda_check.sh OUT     (a Python other than python3)
#   PAIRS="1" STEPS=1 bash benchmarks/cuda_check.sh OUT cpu        (part 3 smaller, for a CPU)
#
# 1. `tac compress` on a 2 s synthetic clip with benchmarks/cuda_smoke.toml on DEVICE: every
#    mask_warp step (train, steering, TTO, fine-tune, sidecar, pose field, package, evaluate)
# 2. that archive inflated on DEVICE and on the CPU: how many bytes of the frames differ, and by
#    how much (float kernels differ between devices; the scores should not, measurably)
# 3. benchmarks/train_step.py at 8 and 32 pairs a step, for the gpu60 and the contest networks
# Each part logs to OUT/<part>.log; OUT/check.log sums up. Exits 1 when a part failed.
set -uo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: bash benchmarks/cuda_check.sh OUT [DEVICE]" >&2; exit 2; fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "cuda_check: cannot create $1" >&2; exit 2; }
DEVICE=${2:-cuda}
PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONUNBUFFERED=1
failed=0
say() { echo "$*" | tee -a "$OUT/check.log"; }
bars() { tr '\r' '\n' | awk '!/\|/ || /100%/'; }    # progress bars: keep each bar's last line only

say "cuda_check on $DEVICE: $("$PY" -c 'import torch; print("torch", torch.__version__,
  torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")' 2>&1)"

rm -rf "$OUT/smoke"
"$PY" -m tac_core compress -o "$OUT/smoke" --preset "$HERE/cuda_smoke.toml" --seconds 2 --steps 40 \
  --device "$DEVICE" --no-baseline 2>&1 | bars >"$OUT/smoke.log"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
  say "smoke: every step ran; seg, pose, bytes, rate, score: $(grep -E '^mask_warp' "$OUT/smoke.log" \
    | awk '{print $3, $4, $5, $6, $7, "(" $8 ")"}')"
else
  say "smoke: FAILED (see $OUT/smoke.log)"; failed=1
fi

if [ -f "$OUT/smoke/archive.zip" ]; then
  ls "$OUT/smoke/archive" | sed 's/\.tac$//' >"$OUT/names.txt"
  rm -rf "$OUT/inflated-device" "$OUT/inflated-cpu"
  if PYTHON="$PY" bash "$OUT/smoke/inflate.sh" "$OUT/smoke/archive" "$OUT/inflated-device" "$OUT/names.txt" \
       >"$OUT/inflate.log" 2>&1 \
     && CUDA_VISIBLE_DEVICES= PYTHON="$PY" bash "$OUT/smoke/inflate.sh" "$OUT/smoke/archive" \
       "$OUT/inflated-cpu" "$OUT/names.txt" >>"$OUT/inflate.log" 2>&1; then
    say "inflate: $("$PY" - "$OUT" <<'PY'
import sys
from pathlib import Path
import numpy as np
out = Path(sys.argv[1])
for raw in sorted((out / "inflated-device").glob("*.raw")):
    a = np.fromfile(raw, np.uint8)
    b = np.fromfile(out / "inflated-cpu" / raw.name, np.uint8)
    diff = np.abs(a.astype(np.int16) - b)
    print(f"{raw.name}: device vs CPU, {int((diff > 0).sum()):,} of {a.size:,} bytes differ, "
          f"by at most {int(diff.max())}")
PY
)"
    rm -rf "$OUT/inflated-device" "$OUT/inflated-cpu"
  else
    say "inflate: FAILED (see $OUT/inflate.log)"; failed=1
  fi
fi

: >"$OUT/train_step.log"
for preset in "$HERE/mask_warp_gpu60.toml" contest; do
  for pairs in ${PAIRS:-8 32}; do
    echo "== --preset $preset --pairs $pairs" >>"$OUT/train_step.log"
    if "$PY" "$HERE/train_step.py" --device "$DEVICE" --pairs $pairs --steps "${STEPS:-10}" --preset "$preset" \
         >>"$OUT/train_step.log" 2>&1; then
      say "train step, $(basename "$preset" .toml) network, $pairs pairs: $(grep -E '^trainer step' \
        "$OUT/train_step.log" | tail -2 | sed -E 's/^trainer step \((\w+)\): *([0-9.]+) ms per pair.*/\1 \2 ms a pair/' \
        | paste -sd ';' | sed 's/;/, /g')"
    else
      say "train step ($preset, $pairs pairs): FAILED (see $OUT/train_step.log)"; failed=1
    fi
  done
done
exit $failed
