"""A published checkpoint, downloaded from the hub, is scored by ``lm-eval run --model hf`` alone.

The process that runs lm-eval imports no fedem: the checkpoint is a plain transformers folder
and the task files are plain lm-eval YAML, so anyone can reproduce the card's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fedem.evaluate.documents import score_documents
from fedem.evaluate.harness import TASKS_DIR, task_name
from fedem.evaluate.heldout import read_heldout
from fedem.model import load_model
from fedem.publish import publish_root, pull_checkpoint

# `lm-eval run ...` as its console script does, then a look at what the process imported.
RUNNER = """
import sys
from lm_eval.__main__ import cli_evaluate
sys.argv = ["lm-eval", *sys.argv[1:]]
try:
    cli_evaluate()
finally:
    print("FEDEM_MODULES", sorted(m for m in sys.modules if m == "fedem" or m.startswith("fedem.")))
"""


def test_lm_eval_scores_a_downloaded_checkpoint_without_fedem(hub, tiny_base, tmp_path):
    if not hasattr(hub, "fake"):
        pytest.skip("one hub is enough for this slow subprocess; hf:// is the one users download from")
    published = publish_root(hub, tiny_base)
    ckpt = pull_checkpoint(hub, "seshu", published.tag, dest=tmp_path / "downloaded")
    out = tmp_path / "results"
    cmd = [
        sys.executable, "-c", RUNNER, "run", "--model", "hf",
        "--model_args", f"pretrained={ckpt.folder},dtype=float32,max_length=64",
        "--tasks", task_name("te"), "--include_path", str(TASKS_DIR),
        "--device", "cpu", "--batch_size", "8", "--output_path", str(out),
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FEDEM_MODULES []" in proc.stdout, "lm-eval's process imported fedem"
    (results,) = out.rglob("results_*.json")
    theirs = json.loads(results.read_text())["results"][task_name("te")]["bits_per_byte,none"]
    heldout = read_heldout(TASKS_DIR / "heldout.jsonl")
    ours = score_documents(load_model(ckpt.folder), heldout.docs["te"], max_length=64).bits_per_byte
    assert theirs == pytest.approx(ours, abs=1e-3)
