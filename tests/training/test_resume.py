"""Nothing lost: a run killed with SIGKILL and resumed ends bit-for-bit where an unbroken run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

STEPS = 40


def _cmd(root, pretrained, out, name, *extra):
    return [sys.executable, "-m", "clipood.cli", "train", "--root", str(root), "--arch", f"local-dir:{pretrained}",
            "--holdout-domain", "sketch", "--steps", str(STEPS), "--batch-size", "4", "--lr", "1e-3",
            "--workers", "0", "--checkpoint-every", "3", "--output-dir", str(out), "--name", name,
            "--no-zeroshot", "--no-progress", "--eval-batch-size", "64", *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigkill_and_resume_is_bit_exact(shapes_root, tiny_pretrained, tmp_path, workers):
    out = tmp_path / "runs"
    ref = subprocess.run(_cmd(shapes_root, tiny_pretrained, out, "unbroken", "--workers", workers),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr

    proc = subprocess.Popen(_cmd(shapes_root, tiny_pretrained, out, "killed", "--workers", workers), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt_dir = out / "killed" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline:
        if ckpt_dir.is_dir() and any(p.name.startswith("step-") and p.name.endswith(".pt.sha256") and
                                     int(p.name[5:13]) >= 6 for p in ckpt_dir.iterdir()):  # complete: checksum too
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "killed" / "results.json").exists(), "the run finished before it could be killed"

    res = subprocess.run([sys.executable, "-m", "clipood.cli", "train", "--resume", str(out / "killed"),
                          "--no-progress"], env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    a = load_file(str(out / "unbroken" / "model" / "open_clip_model.safetensors"))
    b = load_file(str(out / "killed" / "model" / "open_clip_model.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ in {different[:5]}"
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in
             (out / "killed" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == sorted(set(steps)), "metrics after the checkpoint are logged once"
    assert not (out / "killed" / "checkpoints").exists(), "a finished run drops its checkpoints"
    assert json.loads((out / "killed" / "results.json").read_text())["resumed_from_step"] >= 6


def test_sigterm_checkpoints_and_exits_with_resume_hint(shapes_root, tiny_pretrained, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen(_cmd(shapes_root, tiny_pretrained, out, "term", "--checkpoint-every", "1000"),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "term" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    assert list((out / "term" / "checkpoints").glob("step-*.pt"))


def test_resume_refuses_finished_run_and_new_run_refuses_unfinished(shapes_root, tiny_pretrained, tmp_path):
    from clipood.cli import main
    out = tmp_path / "runs"
    args = _cmd(shapes_root, tiny_pretrained, out, "r")[3:]
    args[args.index("--steps") + 1] = "2"
    assert main(args) == 0
    assert main(["train", "--resume", str(out / "r")]) == 2
    assert main(args) == 2  # same name: refuses to overwrite a finished run


def test_resume_of_a_run_killed_before_its_first_checkpoint_logs_each_step_once(shapes_root, tiny_pretrained,
                                                                                tmp_path):
    out = tmp_path / "runs"
    cmd = _cmd(shapes_root, tiny_pretrained, out, "early", "--checkpoint-every", "0", "--log-every", "1")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    metrics = out / "early" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count('"loss"') >= 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "early" / "results.json").exists(), "the run finished before it could be killed"
    assert not (out / "early" / "checkpoints").exists()

    res = subprocess.run([sys.executable, "-m", "clipood.cli", "train", "--resume", str(out / "early"),
                          "--no-progress"], env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in metrics.read_text().splitlines()
             if '"loss"' in line]
    assert steps == list(range(1, STEPS + 1)), "a run resumed from scratch logs every step exactly once"
