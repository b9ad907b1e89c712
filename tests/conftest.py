"""Shared fixtures: a generated multi-domain image dataset and the tiny open_clip config."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # no hub: a lookup would take ~50 s to fail, and nothing may download
os.environ["TRANSFORMERS_OFFLINE"] = "1"
torch.set_num_threads(1)  # tests run in parallel processes on 2 cores


def pytest_configure(config):
    """Every test process gets its own empty clipood cache: no tag or feature a developer built leaks in."""
    import tempfile
    config._clipood_cache = tempfile.mkdtemp(prefix="clipood-test-cache-")
    os.environ["CLIPOOD_CACHE"] = config._clipood_cache


def pytest_unconfigure(config):
    import shutil
    shutil.rmtree(getattr(config, "_clipood_cache", ""), ignore_errors=True)

@pytest.fixture(autouse=True)
def _fresh_console(monkeypatch):
    """Each test starts with no warning or note said yet: clipood says each once per process, so a test that
    checks a warning must not depend on whether an earlier test in its process said the same words."""
    from clipood import console
    monkeypatch.setattr(console, "_said", set())


TINY_ARCH = "clipood-tiny"


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """4 domains (drawing styles) x 8 classes (shapes) x 6 images, 64 px PNG files."""
    from clipood.data.synthetic import make_shapes_dataset
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=6, size=64)


@pytest.fixture
def tiny_config(shapes_root, tmp_path):
    """A Config for a few fast training steps of the tiny model on the shapes dataset."""
    from clipood.config import Config
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = TINY_ARCH, None
    cfg.data.root = str(shapes_root)
    cfg.data.workers = 0
    cfg.train.steps, cfg.train.batch_size = 6, 4
    cfg.train.checkpoint_every = 0
    cfg.optim.lr = 1e-3
    cfg.eval.batch_size = 64
    cfg.run.output_dir, cfg.run.name = str(tmp_path / "runs"), "run"
    return cfg


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """A tiny CLIP saved as an open_clip local-dir folder: the 'pre-trained' weights of e2e tests."""
    import json

    import open_clip
    from safetensors.torch import save_file

    import clipood.model  # noqa: F401  (registers the bundled tiny config)
    torch.manual_seed(1234)
    model = open_clip.create_model(TINY_ARCH)
    out = tmp_path_factory.mktemp("tiny_pretrained")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    cfg = open_clip.get_model_config(TINY_ARCH)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    return out
