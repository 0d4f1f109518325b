"""Distributed training: two gloo processes under torchrun end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
from test_train import known_pairs, tiny_recipe, tiny_scorers, CAMERA
from tac_torch.train import Trainer, init_distributed

world = init_distributed("cpu")
recipe = tiny_recipe(batch_pairs=2)
pairs = known_pairs(4).reshape(-1, *CAMERA, 3)
trainer = Trainer(recipe, pairs, tiny_scorers(), {out!r}, world=world, show_progress=False)
trainer.run(stop_after=2)
torch.save({{**trainer.net.state_dict(), "latents": trainer.latents.detach()}}, {out!r} + f"/rank{{world.rank}}.pt")
"""


@pytest.mark.slow
def test_two_cpu_ranks_end_with_identical_weights(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TAC_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", str(script)], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "checkpoints" / "step-00000002.pt").is_file()
    start = torch.load(out / "checkpoints" / "step-00000002.pt", weights_only=True)
    assert torch.equal(start["latents"], a["latents"])
