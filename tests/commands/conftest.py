"""A finished tiny run with an exported model, shared by the tests of the commands around a trained model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_run(shapes_root, tiny_pretrained, tmp_path_factory):
    from clipood.commands import train
    from clipood.config import Config
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.train.steps, cfg.train.batch_size, cfg.train.checkpoint_every, cfg.compute.device = 3, 2, 0, "cpu"
    cfg.optim.lr = 1e-3
    cfg.run.output_dir, cfg.run.name = str(tmp_path_factory.mktemp("runs")), "trained"
    run, _ = train(cfg, progress=False)
    return run.path
