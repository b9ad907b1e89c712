"""``--profile official`` trains as the paper's official code, and the default profile as clipood's fp32 step.

A few steps of a tiny open_clip model through clipood, against a re-implementation written here from the
equations and from the official code's order of operations (thuml/CLIPood main.py, engine.py ``train`` and
``GeneralMovingAverage``): MMS as ``CE(scale * ((f - lambda T_y) @ T^T))``, AdamW on fp32 copies of the weights,
``clip.model.convert_weights`` after the step (fp16 storage), the BMA update ``(avg + r p) / (1 + r)`` on the fp16
tensors, the cosine schedule of ``CosineAnnealingLR`` and the Beta weights of scipy. Both sides get the same
batches (clipood's sampler, which the profile sets to draw with replacement as DomainBed's loader does); the
forward runs in fp32 on both (the official forward's own fp16 arithmetic is ``--precision``, documented apart).
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from clipood.config import apply_profile
from clipood.training.experiment import build_experiment
from clipood.training.loop import fit, train_loader
from clipood.training.storage import round_to_fp16_

STEPS, LR, LAMBDA, BETA = 6, 3e-4, 0.3, 0.5


def _official_fp16(module: nn.Module) -> list[nn.Parameter]:
    """What clip.model.convert_weights (_convert_weights_to_fp16) turns to fp16, written out from its code."""
    out = []
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            out += [m.weight] + ([m.bias] if m.bias is not None else [])
        if isinstance(m, nn.MultiheadAttention):
            for attr in ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                         "bias_k", "bias_v"]:
                t = getattr(m, attr)
                if t is not None:
                    out.append(t)
        for name in ["text_projection", "proj"]:
            if isinstance(getattr(m, name, None), nn.Parameter):
                out.append(getattr(m, name))
    return list({id(p): p for p in out}.values())


def _experiment(tiny_config, tiny_pretrained, profile: str):
    cfg = apply_profile(profile, [], lambda c: True, base=tiny_config)
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.holdout_domains = ["sketch"]
    cfg.train.steps, cfg.optim.lr = STEPS, LR
    cfg.loss.margin_lambda, cfg.averaging.beta = LAMBDA, BETA
    exp = build_experiment(cfg)
    batches = [(images, exp.label_map[torch.as_tensor(exp.index.labels)[idx]])
               for images, idx, _ in train_loader(exp, 0)]
    return exp, batches


def _reference(tiny_pretrained, exp, batches, *, official: bool) -> dict[str, torch.Tensor]:
    """The official step (``official``) or clipood's documented fp32 step, from the equations."""
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tiny_pretrained}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_pretrained}")
    names = [exp.index.class_names[c] for c in exp.splits.train_classes]
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer([f"a photo of a {c}." for c in names])), dim=-1)
        scale = model.logit_scale.exp().item()
    visual = model.visual
    visual.eval()  # "Freeze all Norm Layers"
    half = _official_fp16(visual) if official else []
    for p in half:  # clip.model.convert_weights(classifier) before training
        p.data = p.data.half()
    optimizer = torch.optim.AdamW(visual.parameters(), lr=LR, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)
    dist = scipy.stats.beta(BETA, BETA)
    weight = lambda it: dist.pdf((it + 0.5) / (STEPS + 1))  # noqa: E731 (main.py's weight_func)
    average = copy.deepcopy(visual)  # GeneralMovingAverage: theta_0, in the dtypes the model holds
    weight_sum = weight(0)
    for it, (x, labels) in enumerate(batches, start=1):
        for p in half:
            p.data = p.data.float()  # the forward here in fp32 on the fp16 numbers (see the module docstring)
        f = visual(x)
        f = f / f.norm(dim=-1, keepdim=True)
        f = f - LAMBDA * text[labels]
        loss = F.cross_entropy(scale * (f @ text.T), labels)
        optimizer.zero_grad()
        loss.backward()
        if not official:
            nn.utils.clip_grad_norm_(visual.parameters(), 1.0)  # clipood's default --grad-clip 1.0
        optimizer.step()  # convert_models_to_fp32 happened above: AdamW in fp32
        for p in half:
            p.data = p.data.half()  # clip.model.convert_weights(model)
        scheduler.step()
        w = weight(it)
        r = w / weight_sum
        with torch.no_grad():
            for a, p in zip(average.parameters(), visual.parameters()):
                if official:
                    a.data = (a + r * p) / (1 + r)  # in the dtype of the stored weights: fp16 arithmetic
                else:
                    a.data = (weight_sum / (weight_sum + w)) * a + (w / (weight_sum + w)) * p  # Eq. 7, fp32
        weight_sum += w
    return {k: v.detach().float() for k, v in average.named_parameters()}


def _trained(exp) -> dict[str, torch.Tensor]:
    fit(exp, progress=False)
    return {k: v.detach().float() for k, v in exp.classifier.visual.named_parameters()}


def _meaningful(name: str, t: torch.Tensor) -> torch.Tensor:
    """The tensor without the key part of an attention's in-projection bias: its gradient is zero in exact
    arithmetic (a constant added to every key's score cancels in the softmax), and AdamW turns the rounding noise
    of that zero into full-size steps, so two correct implementations move it differently."""
    if name.endswith("attn.in_proj_bias"):
        d = t.shape[0] // 3
        return torch.cat([t[:d], t[2 * d:]])
    return t


def _compare(ours: dict, ref: dict) -> tuple[float, float]:
    """(share of elements equal, largest difference in units of the reference's fp16 spacing)."""
    equal = total = 0
    worst = 0.0
    for k, r in ref.items():
        o, r = _meaningful(k, ours[k]), _meaningful(k, r)
        equal += int((o == r).sum())
        total += r.numel()
        spacing = torch.finfo(torch.float16).eps * r.abs().clamp_min(2.0 ** -14)
        worst = max(worst, float(((o - r).abs() / spacing).max()))
    return equal / total, worst


@pytest.fixture
def official(tiny_config, tiny_pretrained):
    exp, batches = _experiment(copy.deepcopy(tiny_config), tiny_pretrained, "official")
    return exp, batches, _trained(exp)


def test_the_official_profile_is_the_official_step(official, tiny_pretrained):
    exp, batches, ours = official
    assert exp.cfg.train.master_weights == "fp16" and exp.cfg.averaging.precision == "fp16"
    assert exp.cfg.optim.grad_clip is None and exp.splits.protocol == "official"
    equal, worst = _compare(ours, _reference(tiny_pretrained, exp, batches, official=True))
    assert equal > 0.99 and worst <= 1.0  # fp16 tolerance: at most one fp16 spacing, almost all bit-equal
    # every fp16-stored weight of the average holds an fp16 number, as the official average does
    for p in _official_fp16(exp.classifier.visual):
        assert torch.equal(p, p.half().float())


def test_the_default_profile_is_clipoods_fp32_step(tiny_config, tiny_pretrained):
    exp, batches = _experiment(copy.deepcopy(tiny_config), tiny_pretrained, "clipood")
    ours = _trained(exp)
    ref = _reference(tiny_pretrained, exp, batches, official=False)
    for k, r in ref.items():
        torch.testing.assert_close(_meaningful(k, ours[k]), _meaningful(k, r), rtol=1e-5, atol=1e-6, msg=k)


def test_the_two_steps_differ_by_more_than_the_tolerance(official, tiny_pretrained):
    """The comparison above can fail: clipood's fp32 step is many fp16 spacings away from the official one."""
    exp, batches, ours = official
    _, worst = _compare(ours, _reference(tiny_pretrained, exp, batches, official=False))
    assert worst > 4.0


def test_fp16_storage_keeps_less_of_each_update():
    """At the paper's learning rate an AdamW step (about lr per weight) is below the fp16 spacing of most weights."""
    torch.manual_seed(0)
    w = torch.randn(4096) * 0.02
    round_to_fp16_([w])
    stepped = w + 5e-6 * torch.sign(torch.randn(4096))
    kept = stepped.clone()
    round_to_fp16_([kept])
    assert (kept == w).float().mean() > 0.3  # a third or more of the weights do not move at all

