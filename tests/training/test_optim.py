"""AdamW and its schedule: linear warm-up, then cosine decay to min_lr_ratio * lr."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from clipood.training.optim import apply_gradients, build_optimizer, build_scheduler, cosine_with_warmup

LR = 5e-6


def closed_form(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """lr of step s (0-based): LR (s+1)/w during warm-up, then
    LR [m + (1 - m) (1 + cos(pi (s - w) / (T - w))) / 2]."""
    if step < warmup:
        return LR * (step + 1) / warmup
    return LR * (min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2)


def _optimizer(device="cpu", **kw):
    p = torch.nn.Parameter(torch.zeros(3))
    args = dict(lr=LR, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8, device=torch.device(device))
    args.update(kw)
    return p, build_optimizer([p], **args)


@pytest.mark.parametrize("total,warmup,min_ratio", [(5000, 0, 0.0), (100, 10, 0.0), (37, 5, 0.1), (1, 0, 0.0)])
def test_scheduler_follows_the_closed_form(total, warmup, min_ratio):
    p, opt = _optimizer()
    sched = build_scheduler(opt, total_steps=total, warmup_steps=warmup, min_lr_ratio=min_ratio)
    checkpoints = sorted({0, 1, warmup, warmup + 1, total // 3, total // 2, total - 1, total})
    for step in range(total + 1):
        lr = opt.param_groups[0]["lr"]
        if step in checkpoints:
            assert lr == pytest.approx(closed_form(step, total, warmup, min_ratio), rel=1e-12, abs=1e-18)
        p.grad = torch.ones(3)
        opt.step()
        sched.step()


def test_landmarks_of_the_schedule():
    T, w, m = 1000, 100, 0.2

    def f(s):
        return cosine_with_warmup(s, total=T, warmup=w, min_ratio=m)

    assert f(0) == pytest.approx(1 / w)
    assert f(w - 1) == pytest.approx(1.0)  # warm-up ends at the full rate
    assert f(w) == pytest.approx(1.0)  # the cosine starts at the full rate
    assert f(w + (T - w) // 2) == pytest.approx((1 + m) / 2)  # half-way
    assert f(T) == pytest.approx(m) and f(T + 50) == pytest.approx(m)  # ends at the floor, stays there
    values = [f(s) for s in range(w, T + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay


def test_paper_schedule_has_no_warmup_and_decays_to_zero():
    assert cosine_with_warmup(0, total=5000, warmup=0, min_ratio=0.0) == 1.0
    assert cosine_with_warmup(5000, total=5000, warmup=0, min_ratio=0.0) == pytest.approx(0.0, abs=1e-15)


def test_adamw_settings_are_passed_through():
    _, opt = _optimizer(lr=1e-5, weight_decay=0.05, betas=[0.8, 0.95], eps=1e-6)
    assert isinstance(opt, torch.optim.AdamW)
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["eps"]) == (1e-5, 0.05, (0.8, 0.95), 1e-6)


def test_fused_adamw_only_requested_on_cuda():
    _, cpu = _optimizer("cpu")
    assert not cpu.defaults.get("fused")
    # The request depends on the device argument alone (CPU params keep this runnable without a GPU;
    # this torch also has a fused CPU kernel).
    p, cuda = _optimizer("cuda")
    assert cuda.defaults.get("fused") is True
    p.grad = torch.ones(3)
    cuda.step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_adamw_on_cuda_matches_the_reference():
    torch.manual_seed(0)
    w = torch.randn(64, device="cuda")
    grads = [torch.randn(64, device="cuda") for _ in range(5)]
    p1, p2 = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    fused = build_optimizer([p1], lr=1e-3, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8,
                            device=torch.device("cuda"))
    plain = torch.optim.AdamW([p2], lr=1e-3, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    assert fused.defaults["fused"] is True
    for g in grads:
        p1.grad, p2.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-7)


def _sgd_with_scaler(init_scale: float = 2.0 ** 10):
    """Plain SGD (lr 1): the update is minus the gradient as used, so the clipping order shows."""
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    # fp16 training uses the CUDA scaler; the CPU one runs the same unscale/skip logic.
    return p, opt, sched, torch.amp.GradScaler("cpu", init_scale=init_scale)


def test_fp16_scaler_unscales_before_clipping():
    """The clip bounds the true gradient's norm, not the scaled one: grad (3, 4, 0) clipped to
    norm 1 moves the weights by (-0.6, -0.8, 0) whatever the loss scale."""
    p, opt, sched, scaler = _sgd_with_scaler()
    scaler.scale((p * torch.tensor([3.0, 4.0, 0.0])).sum()).backward()
    assert p.grad[1] == 4.0 * 2 ** 10
    apply_gradients(opt, sched, scaler, grad_clip=1.0)
    torch.testing.assert_close(p.detach(), torch.tensor([-0.6, -0.8, 0.0]))
    assert scaler.get_scale() == 2.0 ** 10 and sched.last_epoch == 1


def test_fp16_scaler_skips_an_overflowing_step_and_lowers_the_scale():
    """An fp16 overflow (inf gradient) leaves the weights as they were and halves the loss scale;
    the schedule still counts the step, so it stays aligned with the step counter, silently."""
    p, opt, sched, scaler = _sgd_with_scaler()
    scaler.scale((p * torch.tensor([float("inf"), 1.0, 1.0])).sum()).backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning about the schedule stepping alone
        apply_gradients(opt, sched, scaler, grad_clip=1.0)
    assert torch.equal(p.detach(), torch.zeros(3))
    assert scaler.get_scale() == 2.0 ** 9 and sched.last_epoch == 1
