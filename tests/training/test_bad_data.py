"""Broken images during a run (fail with the path, or skip and list them) and a non-finite loss."""

from __future__ import annotations

import shutil

import pytest
import torch

from clipood.commands import train as run_train
from clipood.errors import ClipoodError, DataError
from clipood.rundir import list_checkpoints
from clipood.training import checkpoint as ckpt


@pytest.fixture
def broken_root(shapes_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    victim = root / "photo" / "circle" / "0000.png"
    victim.write_bytes(victim.read_bytes()[:60])  # truncated PNG
    (root / "cartoon" / "star" / "0001.png").write_bytes(b"not an image at all")
    return root


def test_fail_policy_names_the_file(tiny_config, broken_root):
    cfg = tiny_config
    cfg.data.root = str(broken_root)
    with pytest.raises(DataError, match=r"(0000|0001)\.png: unreadable image .*--bad-images skip"):
        run_train(cfg, progress=False)


def test_skip_policy_lists_them_and_finishes(tiny_config, broken_root):
    cfg = tiny_config
    cfg.data.root = str(broken_root)
    cfg.data.bad_images = "skip"
    cfg.train.steps = 30  # enough draws to meet the broken training images
    run, results = run_train(cfg, progress=False)
    listed = (run.path / "bad_images.txt").read_text().splitlines()
    assert results["bad_images"] == len(listed) == 2
    assert {line.split("\t")[0].rsplit("/", 2)[-2] for line in listed} == {"circle", "star"}
    total_n = sum(e["n"] for e in results["final"].values())
    assert total_n == sum(len_ for len_ in [e["n"] for e in results["zeroshot"].values()])


def test_non_finite_loss_stops_before_the_average_and_keeps_last_checkpoint(tiny_config, monkeypatch):
    from clipood import losses
    calls = {"n": 0}
    original = losses.MetricSoftmaxLoss.forward

    def flaky(self, cos, labels, **kwargs):
        calls["n"] += 1
        out = original(self, cos, labels, **kwargs)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(losses.MetricSoftmaxLoss, "forward", flaky)
    cfg = tiny_config
    cfg.train.steps, cfg.train.checkpoint_every = 8, 2
    with pytest.raises(ClipoodError, match="loss became nan at step 5"):
        run_train(cfg, progress=False)
    run_dir = tiny_config.run.output_dir + "/run"
    saved = [s for s, _ in list_checkpoints(run_dir)]
    assert saved == [2, 4]
    state = ckpt.load_latest(run_dir)
    assert all(torch.isfinite(a).all() for a in state["averager"]["average"])
    assert all(torch.isfinite(t).all() for t in state["tracked"])
