"""Cost of the Beta Moving Average: update time / optimiser step time, and its extra memory.

The BMA update (Eq. 7) is one in-place ``torch._foreach_lerp_`` of the fp32 average
towards the trained tensors, under no_grad. The AdamW step it is compared with is the
one clipood builds (fused on CUDA, foreach on CPU) on the same tensors, with gradients
present. Targets: update / optimiser step <= 1.0; extra memory = 1 copy of the trained
parameters (plus floating buffers, of which a ViT has none).

    python perf/bench_average.py                               # CPU default
    python perf/bench_average.py --arch ViT-B-16 --device cuda
"""

from __future__ import annotations

import argparse
import gc
import sys

import common
import torch

from clipood.averaging import build_averager
from clipood.training.loop import train_step

TARGET_TIME = 1.0
TARGET_COPIES = 1.0


def allocated(device: torch.device) -> int:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    return common.rss_bytes()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, arch="ViT-B-32", batch=2, reps=20)
    p.add_argument("--average-every", type=int, default=1, help="BMA update every k steps (default 1).")
    args = p.parse_args(argv)
    common.setup(args)

    exp = common.experiment(args, classes=8, loss="mms", averaging="none")
    info = common.header("BMA update / optimiser step; BMA memory / trained parameters", args, exp.device,
                         exp.autocast_dtype)
    x, y = common.batch(exp, args.batch, 8)
    train_step(exp, x, y)  # gradients and AdamW state exist from here on

    params = [p for g in exp.optimizer.param_groups for p in g["params"]]
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    before = allocated(exp.device)
    bma = build_averager("bma", exp.tracked, exp.cfg.train.steps, beta=0.5, every=args.average_every)
    measured = allocated(exp.device) - before
    step = {"n": 0}

    def bma_update():
        step["n"] += 1
        bma.update(step["n"])

    times = common.interleaved({"optimizer": exp.optimizer.step, "bma": bma_update}, reps=args.reps,
                               warmup=args.warmup, device=exp.device)
    ratio = common.median(times["bma"]) / common.median(times["optimizer"])
    fused = any(g.get("fused") for g in exp.optimizer.param_groups)
    kind = "fused" if fused else ("foreach" if any(g.get("foreach") for g in exp.optimizer.param_groups)
                                  else "torch default")
    print(f"{'trained parameters':>26}: {sum(p.numel() for p in params) / 1e6:.1f} M "
          f"({param_bytes / 2**20:.1f} MiB fp32)")
    print(f"{'AdamW step':>26}: {common.spread(times['optimizer'])}  ({kind} AdamW)")
    print(f"{'BMA update':>26}: {common.spread(times['bma'])}")
    print(f"{'time ratio':>26}: {ratio:.3f}  (target <= {TARGET_TIME})")
    copies = bma.nbytes() / param_bytes
    print(f"{'BMA bytes / trained bytes':>26}: {copies:.3f}  (target {TARGET_COPIES} copy)")
    where = "CUDA memory_allocated" if exp.device.type == "cuda" else "process RSS"
    print(f"{'measured extra memory':>26}: {measured / 2**20:.1f} MiB = {measured / param_bytes:.3f} copies ({where})")
    info.update(trained_params=sum(p.numel() for p in params), optimizer_s=times["optimizer"], bma_s=times["bma"],
                time_ratio=ratio, time_target=TARGET_TIME, copies=copies, measured_copies=measured / param_bytes,
                measured_by=where, adamw=kind)
    common.finish(args, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
