"""What trains (--tuning): LP-FT's two phases and FLYP's text tower, on the tiny model and the shapes data."""

from __future__ import annotations

import pytest
import torch

from clipood.errors import ConfigError
from clipood.methods import METHODS
from clipood.model import encode_class_texts, text_parameters
from clipood.training.experiment import build_experiment
from clipood.training.loop import train_step
from clipood.tuning import TUNINGS, lp_steps


def _batch(exp, n=8):
    g = torch.Generator().manual_seed(0)
    size = exp.backbone.preprocess_cfg["size"]
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(n, 3, size, size, generator=g)
    labels = torch.randint(0, len(exp.splits.train_classes), (n,), generator=g)
    return images, labels


def _step(exp, step, images, labels):
    exp.before_step(step)
    return train_step(exp, images, labels)


def test_lp_ft_trains_the_head_alone_then_fine_tunes_from_it(tiny_config):
    cfg = METHODS["lp-ft"].configure(tiny_config)
    cfg.train.steps, cfg.tuning.lp_fraction = 4, 0.5
    exp = build_experiment(cfg)
    assert lp_steps(4, 0.5) == 2
    tower = [p for p in exp.classifier.visual.parameters()]
    theta0 = [p.detach().clone() for p in tower]
    head0 = exp.classifier.head.linear.weight.detach().clone()
    images, labels = _batch(exp)
    for step in (1, 2):  # the probe: the head moves, the tower does not
        _step(exp, step, images, labels)
        assert all(p.grad is None for p in tower)
    assert all(torch.equal(p, q) for p, q in zip(tower, theta0))
    probed = exp.classifier.head.linear.weight.detach().clone()
    assert not torch.equal(probed, head0)
    exp.before_step(3)  # fine-tuning starts from the probed head, nothing re-initialised
    assert torch.equal(exp.classifier.head.linear.weight, probed)
    train_step(exp, images, labels)
    assert any(not torch.equal(p, q) for p, q in zip(tower, theta0))
    assert not torch.equal(exp.classifier.head.linear.weight, probed)


def test_lp_ft_phase_is_a_function_of_the_step(tiny_config):
    """A resumed run is in the phase of its step, whatever ran before in the process."""
    cfg = METHODS["lp-ft"].configure(tiny_config)
    cfg.train.steps = 10
    exp = build_experiment(cfg)
    tower = list(exp.classifier.visual.parameters())
    for step, trains in ((7, True), (2, False), (5, False), (6, True)):
        exp.before_step(step)
        assert all(p.requires_grad is trains for p in tower)


def test_lp_ft_needs_a_linear_head(tiny_config):
    tiny_config.tuning.name = "lp-ft"
    with pytest.raises(ConfigError, match=r"--tuning lp-ft: needs a loss on a linear head.*--loss scores the text"):
        build_experiment(tiny_config)


def test_flyp_trains_the_text_tower_and_evaluates_with_it(tiny_config):
    cfg = METHODS["flyp"].configure(tiny_config)
    exp = build_experiment(cfg)
    model = exp.backbone.model
    text = text_parameters(model)
    assert text and all(any(p is t for t in exp.tracked) for p in text)  # averaged and checkpointed too
    assert model.transformer.training  # FLYP trains the text tower in train mode
    before = [p.detach().clone() for p in text]
    scale = model.logit_scale.detach().clone()
    weights0 = exp.class_weights().weight
    images, labels = _batch(exp)
    _step(exp, 1, images, labels)
    assert all(p.grad is not None for p in text)
    assert any(not torch.equal(p, q) for p, q in zip(text, before))
    assert torch.equal(model.logit_scale, scale)  # tau stays the model's
    # evaluation scores every class with the text tower as it is now, not the texts encoded before training
    now = encode_class_texts(model, exp.backbone.tokenizer, exp.index.class_names, exp.templates)
    assert torch.allclose(exp.class_weights().weight, now.cpu(), atol=1e-6)
    assert not torch.allclose(weights0, now.cpu(), atol=1e-4)


def test_flyp_head_equals_the_text_towers_own_encoding(tiny_config):
    exp = build_experiment(METHODS["flyp"].configure(tiny_config))
    names = [exp.index.class_names[c] for c in exp.splits.train_classes]
    want = encode_class_texts(exp.backbone.model, exp.backbone.tokenizer, names, exp.templates)
    assert torch.allclose(exp.classifier.head.text_features().detach(), want, atol=1e-6)


@pytest.mark.parametrize("option,value,message", [
    ("accum_steps", 2, r"--loss contrastive: its value is of the whole batch.*--accum-steps"),
])
def test_whole_batch_losses_refuse_micro_batches(tiny_config, option, value, message):
    cfg = METHODS["flyp"].configure(tiny_config)
    setattr(cfg.train, option, value)
    with pytest.raises(ConfigError, match=message):
        build_experiment(cfg)


def test_coral_refuses_a_batch_of_one_per_domain(tiny_config):
    cfg = METHODS["coral"].configure(tiny_config)
    cfg.train.batch_size = 1
    with pytest.raises(ConfigError, match=r"--loss coral: .*at least 2 images per domain"):
        build_experiment(cfg)


def test_every_tuning_is_documented_with_its_parameters():
    import dataclasses

    from clipood.config.tree import TuningConfig
    fields = {f.name: f for f in dataclasses.fields(TuningConfig)}
    assert fields["name"].metadata["choices"] == tuple(TUNINGS)
    for entry in TUNINGS.values():
        assert entry.help
        for p in entry.params:
            assert p.name in fields and p.help
