"""GPU training throughput of CLIPood on ViT-B/16 at bf16: images/s and model FLOPs utilisation.

Runs clipood's own training step (MMS loss, fused AdamW, bf16 autocast, BMA update every
step) on random-init ViT-B/16 at 224 px and reports images/s and MFU: achieved model
FLOP/s (forward + backward, counted by torch's FlopCounterMode on the real step, no
recomputation counted) over the GPU's dense bf16 peak (H100 SXM: 989 TFLOPS). Needs CUDA;
on a machine without it, it says so and exits. ``--smoke-cpu`` runs every line of it on the
CPU instead, to check the script before GPU time is spent on it (its figures mean nothing).

    python perf/bench_gpu_throughput.py                        # ViT-B-16, batch 256, bf16
    python perf/bench_gpu_throughput.py --compile --batch 512 --peak-tflops 989
    python perf/bench_gpu_throughput.py --smoke-cpu --arch clipood-tiny --batch 4 --reps 2
"""

from __future__ import annotations

import argparse
import sys

import common
import torch
from torch.utils.flop_counter import FlopCounterMode

from clipood.averaging import build_averager
from clipood.training.loop import train_step

H100_BF16_DENSE_TFLOPS = 989.0


def step_flops(exp, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward + backward of the image tower on (x, y), counted op by op."""
    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(exp.device.type, dtype=exp.autocast_dtype, enabled=exp.autocast_dtype is not None):
            scores = exp.classifier(x)
        exp.loss_fn(scores.float(), y).backward()
    exp.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def vit_flops_per_image(width: int, layers: int, tokens: int, patch_pixels: int, embed_dim: int,
                        mlp_ratio: float = 4.0) -> float:
    """Analytic training FLOPs of a ViT image (3 x forward: matmuls only), for a cross-check."""
    per_token_layer = 2 * (4 * width * width + 2 * mlp_ratio * width * width) + 2 * 2 * tokens * width
    forward = layers * tokens * per_token_layer + 2 * (tokens - 1) * patch_pixels * width + 2 * width * embed_dim
    return 3 * forward


def analytic_flops(visual) -> float | None:
    """vit_flops_per_image for an open_clip VisionTransformer tower (None for other towers)."""
    t = getattr(visual, "transformer", None)
    if t is None or not hasattr(visual, "conv1") or not hasattr(t, "resblocks"):
        return None
    width, layers = t.width, t.layers
    grid = visual.grid_size[0] * visual.grid_size[1]
    tokens = grid + (1 if getattr(visual, "class_embedding", None) is not None else 0)
    patch = visual.conv1.in_channels * visual.conv1.kernel_size[0] * visual.conv1.kernel_size[1]
    mlp = t.resblocks[0].mlp.c_fc.out_features / width
    return vit_flops_per_image(width, layers, tokens, patch, visual.output_dim, mlp)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, arch="ViT-B-16", batch=256, reps=20)
    p.add_argument("--classes", type=int, default=345, help="classes (default 345, DomainNet).")
    p.add_argument("--compile", action="store_true", help="torch.compile the image tower.")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing.")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS,
                   help="dense bf16 peak of the GPU in TFLOPS (default 989: H100 SXM; H100 PCIe 756, H200 989).")
    p.add_argument("--smoke-cpu", action="store_true",
                   help="run the whole script on the CPU (e.g. --arch clipood-tiny) to check that it works; "
                        "the figures mean nothing.")
    args = p.parse_args(argv)
    if args.smoke_cpu:
        args.device = "cpu"
    elif not torch.cuda.is_available() or args.device == "cpu":
        print("bench_gpu_throughput: skipped: it measures GPU throughput and needs a CUDA device; "
              "none is available here (run it on a GPU machine: python perf/bench_gpu_throughput.py)")
        return 0
    args.device = "cuda" if args.device == "auto" else args.device
    if args.precision == "auto":
        args.precision = "bf16" if args.device.startswith("cuda") else "fp32"
    args.warmup = max(args.warmup, 5 if args.compile else 3)
    common.setup(args)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    exp = common.experiment(args, classes=args.classes, loss="mms", averaging="none", compile=args.compile,
                            grad_checkpointing=args.grad_checkpointing)
    info = common.header("CLIPood training throughput and MFU", args, exp.device, exp.autocast_dtype)
    x, y = common.batch(exp, args.batch, args.classes)
    flops_per_image = step_flops(exp, x[:1], y[:1])
    bma = build_averager("bma", exp.tracked, exp.cfg.train.steps, beta=0.5)
    step = {"n": 0}

    def clipood_step():
        train_step(exp, x, y)
        step["n"] += 1
        bma.update(step["n"])

    times = common.interleaved({"step": clipood_step}, reps=args.reps, warmup=args.warmup, device=exp.device)
    sec = common.median(times["step"])
    ips = args.batch / sec
    mfu = ips * flops_per_image / (args.peak_tflops * 1e12)
    mem = torch.cuda.max_memory_allocated(exp.device) / 2**30 if exp.device.type == "cuda" else None
    print(f"{'step (MMS + AdamW + BMA)':>28}: {common.spread(times['step'])}")
    print(f"{'model GFLOPs / image (train)':>28}: {flops_per_image / 1e9:.1f} (counted)")
    analytic = analytic_flops(exp.classifier.visual)
    if analytic:
        print(f"{'analytic (3 x forward)':>28}: {analytic / 1e9:.1f}")
    print(f"{'throughput':>28}: {ips:.0f} images/s")
    print(f"{'MFU':>28}: {100 * mfu:.1f}% of {args.peak_tflops:.0f} TFLOPS bf16 dense")
    print(f"{'peak memory':>28}: " + (f"{mem:.1f} GiB" if mem is not None else "n/a (CPU smoke run)"))
    info.update(classes=args.classes, compile=args.compile, step_s=times["step"], images_per_s=ips,
                flops_per_image=flops_per_image, mfu=mfu, peak_tflops=args.peak_tflops, peak_memory_gib=mem)
    common.finish(args, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
