"""Methods by name: each sets the loss and averaging of the run and keeps everything else."""

from __future__ import annotations

from clipood.methods import METHODS, get_method


def test_methods_registry_sets_loss_and_averaging(tiny_config):
    expected = {"erm-linear": ("linear", "none"), "finetune": ("metric_softmax", "none"), "clipood": ("mms", "bma"),
                "clipood-no-margin": ("metric_softmax", "bma"), "clipood-fixed-margin": ("fixed_margin", "bma"),
                "clipood-ema": ("mms", "ema"), "clipood-uniform": ("mms", "uniform"), "clipood-no-avg": ("mms", "none")}
    for name, (loss, averaging) in expected.items():
        cfg = get_method(name).configure(tiny_config)
        assert (cfg.loss.name, cfg.averaging.name) == (loss, averaging), name
        assert cfg.train.steps == tiny_config.train.steps and cfg is not tiny_config
    assert {"zeroshot", "wise-ft"} <= set(METHODS)
