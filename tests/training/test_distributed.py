"""Two processes (torchrun, gloo on CPU) reproduce the one-process run with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from clipood.commands import train as run_train

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _options(root, pretrained):
    # 3 training domains x 3 images = a global batch of 9: the ranks hold 5 and 4 images, and
    # --accum-steps 2 splits those again unevenly, so a mean-of-means would show. Adam's eps is
    # raised from 1e-8 so that elements whose true gradient is 0 (attention key biases), where
    # Adam would turn round-off into lr-sized steps, stay comparable.
    return {"root": str(root), "arch": f"local-dir:{pretrained}", "pretrained": "auto",
            "holdout-domain": "sketch", "steps": "4", "batch-size": "3", "lr": "1e-3", "adam-eps": "1e-4",
            "workers": "0", "checkpoint-every": "0", "log-every": "1", "eval-batch-size": "5", "device": "cpu"}


def _flags(opts: dict) -> list[str]:
    return [x for k, v in opts.items() for x in (f"--{k}", v)]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_torchrun_two_processes_equal_one_process(tiny_config, tiny_pretrained, shapes_root, tmp_path):
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.holdout_domains = ["sketch"]
    cfg.train.steps, cfg.train.batch_size, cfg.train.log_every, cfg.compute.device = 4, 3, 1, "cpu"
    cfg.optim.eps, cfg.eval.batch_size, cfg.eval.zeroshot = 1e-4, 5, True
    one_run, one = run_train(cfg, progress=False)

    out = tmp_path / "ddp"
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "clipood.cli", "train",
           *_flags(_options(shapes_root, tiny_pretrained)), "--accum-steps", "2",
           "--output-dir", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1, "only rank 0 prints"

    runs = list(out.iterdir())
    assert len(runs) == 1, f"rank 0 alone creates the run directory: {runs}"
    two_dir = runs[0]
    two = json.loads((two_dir / "results.json").read_text())
    assert two["environment"]["world_size"] == 2 and one["environment"]["world_size"] == 1

    # The averaged (BMA) weights, exported by rank 0, equal the 1-process ones up to reduction order.
    a = load_file(str(one_run.model_dir / "open_clip_model.safetensors"))
    b = load_file(str(two_dir / "model" / "open_clip_model.safetensors"))
    start = load_file(str(tiny_pretrained / "open_clip_model.safetensors"))
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], start[k]) for k in a), "training moved the weights"
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7, msg=lambda m: f"{k}: {m}")

    # Metrics: each step logged once (rank 0 only), with the all-reduced global-batch loss.
    def losses(run_dir):
        recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in recs if "loss" in r]

    l1, l2 = losses(one_run.path), losses(two_dir)
    assert [s for s, _ in l2] == [1, 2, 3, 4] == [s for s, _ in l1]
    assert [v for _, v in l2] == pytest.approx([v for _, v in l1], rel=1e-5)

    # Sharded evaluation, gathered: the same images counted, the same accuracies.
    for phase in ("zeroshot", "final"):
        assert two[phase].keys() == one[phase].keys()
        for name, entry in one[phase].items():
            assert two[phase][name]["n"] == entry["n"], (phase, name)
            assert two[phase][name]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9), (phase, name)


# --------------------------------------------------------------- collectives, 2 spawned processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collectives_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from clipood.data.bad_images import BadImages
    from clipood.training import distributed
    with distributed.session("cpu") as ctx:
        rows = torch.arange(6, dtype=torch.float32).reshape(3, 2) if rank == 0 else torch.empty(0, 0)
        ids = torch.tensor([7, 8, 9]) if rank == 0 else torch.empty(0, dtype=torch.long)
        result = {
            "rank": ctx.rank, "world": ctx.world_size, "backend": ctx.backend,
            "rows": ctx.all_gather_rows(rows).tolist(), "ids": ctx.all_gather_rows(ids).tolist(),
            "sum": ctx.all_reduce_sum(torch.tensor([float(rank + 1)])).item(),
            "any": ctx.any(rank == 1), "none": ctx.any(False),
            "name": ctx.broadcast_object("from-rank-0" if rank == 0 else "ignored"),
            "gathered": ctx.all_gather_objects(rank * 10),
        }
        bad = BadImages("skip", ["a.png", "b.png", "c.png"])
        bad([(rank, "truncated")])  # each rank skipped a different image
        bad.gather(ctx)
        result["bad"] = bad.items()
    Path(out_dir, f"{rank}.json").write_text(json.dumps(result))


def test_collectives_over_gloo(tmp_path):
    mp.spawn(_collectives_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        r = json.loads((tmp_path / f"{rank}.json").read_text())
        assert (r["rank"], r["world"], r["backend"]) == (rank, 2, "gloo")
        assert r["rows"] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], "an empty shard adds no rows"
        assert r["ids"] == [7, 8, 9]
        assert r["sum"] == 3.0 and r["any"] is True and r["none"] is False
        assert r["name"] == "from-rank-0" and r["gathered"] == [0, 10]
        assert r["bad"] == [["a.png", "truncated"], ["b.png", "truncated"]], "every rank knows all skipped images"


def test_single_process_context_is_a_no_op(monkeypatch):
    from clipood.training import distributed
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.session("cpu") as ctx:
        assert ctx is distributed.SINGLE and not ctx.enabled and ctx.is_main
        t = torch.ones(3)
        assert ctx.all_reduce_sum(t) is t and ctx.all_gather_rows(t) is t
        assert ctx.broadcast_object("x") == "x" and ctx.any(True) and not ctx.any(False)


def test_bad_launch_environment_is_a_one_line_error(monkeypatch):
    from clipood.errors import ConfigError
    from clipood.training import distributed
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ConfigError, match="RANK='zero' is not an integer"):
        distributed.init("cpu")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ConfigError, match="MASTER_ADDR is not set; launch with torchrun"):
        distributed.init("cpu")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(ConfigError, match="--device: 'cuda:1' names one GPU"):
        distributed.init("cuda:1")


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_one_process_run_resumes_under_torchrun(tiny_config, tiny_pretrained, shapes_root, tmp_path, monkeypatch):
    """Scaling out mid-run: a 1-process run stopped after its step-2 checkpoint, resumed with 2
    processes, ends where the unbroken 1-process run ends (the global batch of step t does not
    depend on the number of processes)."""
    from clipood.training import loop
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.holdout_domains = ["sketch"]
    cfg.train.steps, cfg.train.batch_size, cfg.train.log_every, cfg.compute.device = 4, 3, 1, "cpu"
    cfg.optim.eps, cfg.eval.batch_size, cfg.eval.zeroshot = 1e-4, 5, False
    cfg.run.output_dir, cfg.run.name = str(tmp_path), "unbroken"
    unbroken, first = run_train(cfg, progress=False)
    assert first["resumed_from_step"] is None

    class Stop(Exception):
        pass

    save = loop.ckpt.save_checkpoint

    def save_then_stop(run_dir, step, state, keep):  # a crash right after the step-2 checkpoint
        save(run_dir, step, state, keep)
        raise Stop
    monkeypatch.setattr(loop.ckpt, "save_checkpoint", save_then_stop)
    cfg.train.checkpoint_every, cfg.run.name = 2, "scaled-out"
    with pytest.raises(Stop):
        run_train(cfg, progress=False)
    monkeypatch.undo()
    stopped = tmp_path / "scaled-out"
    assert (stopped / "checkpoints" / "step-00000002.pt").is_file() and not (stopped / "results.json").exists()

    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "clipood.cli", "train", "--resume", str(stopped),
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((stopped / "results.json").read_text())
    assert resumed["environment"]["world_size"] == 2 and resumed["resumed_from_step"] == 2
    a = load_file(str(unbroken.model_dir / "open_clip_model.safetensors"))
    b = load_file(str(stopped / "model" / "open_clip_model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7, msg=lambda m: f"{k}: {m}")
    steps = [json.loads(x)["step"] for x in (stopped / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2, 3, 4]
