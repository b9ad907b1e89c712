"""A model without a trainer: eval, zeroshot, predict and wise-ft build no optimiser and no averager."""

from __future__ import annotations

import pytest
import torch

from clipood import tuning
from clipood.averaging import WeightAverage
from clipood.cli import main
from clipood.training import experiment


def _refuse(*args, **kwargs):
    raise AssertionError("a trainer was built")


@pytest.fixture
def no_trainer(monkeypatch):
    """Every way to an optimiser or an averager raises: the builders, AdamW itself and any averager class."""
    for name in ("build_training", "build_optimizer", "build_scheduler", "build_averager"):
        monkeypatch.setattr(experiment, name, _refuse)
    monkeypatch.setattr(tuning, "set_trainable", _refuse)  # what trains is the tuning's to set
    monkeypatch.setattr(torch.optim, "AdamW", _refuse)
    monkeypatch.setattr(WeightAverage, "__init__", _refuse)


def test_commands_around_a_model_build_no_optimizer_and_no_averager(no_trainer, trained_run, tiny_pretrained,
                                                                    shapes_root, tmp_path, capsys):
    data = ["--root", str(shapes_root), "--holdout-domain", "sketch", "--workers", "0", "--device", "cpu",
            "--no-progress"]
    assert main(["zeroshot", *data, "--arch", f"local-dir:{tiny_pretrained}", "--output-dir", str(tmp_path),
                 "--name", "zs", "--save-model"]) == 0
    assert main(["eval", *data, "--model", str(trained_run / "model"), "--out", str(tmp_path / "eval.json")]) == 0
    assert main(["wise-ft", str(tmp_path / "zs"), str(trained_run), *data, "--alphas", "0,1",
                 "--output-dir", str(tmp_path), "--name", "wise"]) == 0
    assert main(["predict", "--model", str(trained_run / "model"), "--classes", "circle,square",
                 str(shapes_root / "sketch"), "--out", str(tmp_path / "p.csv"), "--device", "cpu",
                 "--no-progress"]) == 0
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "wise" / "results.json").is_file()
    # the same patches stop a training run: they do catch a trainer
    with pytest.raises(AssertionError, match="a trainer was built"):
        main(["train", *data, "--arch", f"local-dir:{tiny_pretrained}", "--steps", "1", "--output-dir",
              str(tmp_path), "--name", "t"])
