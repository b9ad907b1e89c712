"""Training step time: CLIPood (MMS loss + BMA update) / plain vision-language fine-tuning.

Both run on the same model, optimiser and batch through clipood's own ``train_step``:
CLIPood adds the margin (one row gather and add on the (B, C) logits) and the BMA update
(one in-place lerp over the trained tensors); plain fine-tuning is cross-entropy on the
cosine logits without averaging. Steps are interleaved; the ratio of medians is printed.
Target: <= 1.05.

    python perf/bench_step.py                                  # CPU default (~1-2 min)
    python perf/bench_step.py --arch ViT-B-16 --batch 256 --device cuda --classes 345
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import common

from clipood.averaging import build_averager
from clipood.losses import build_loss
from clipood.training.loop import train_step

TARGET = 1.05


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, arch="ViT-B-32", batch=8, reps=10)
    p.add_argument("--classes", type=int, default=65, help="classes (default 65, OfficeHome; DomainNet 345).")
    p.add_argument("--average-every", type=int, default=1, help="BMA update every k steps (default 1, the paper).")
    p.add_argument("--compile", action="store_true", help="torch.compile the image tower (both variants).")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing (both variants).")
    args = p.parse_args(argv)
    common.setup(args)

    exp = common.experiment(args, classes=args.classes, loss="mms", averaging="none", compile=args.compile,
                            grad_checkpointing=args.grad_checkpointing)
    info = common.header("CLIPood step / plain fine-tuning step", args, exp.device, exp.autocast_dtype)
    x, y = common.batch(exp, args.batch, args.classes)
    train_text = exp.text_features[exp.splits.train_classes]
    plain = dataclasses.replace(exp, loss_fn=build_loss("metric_softmax", train_text, exp.temperature)
                                .to(exp.device))
    bma = build_averager("bma", exp.tracked, exp.cfg.train.steps, beta=0.5, every=args.average_every)
    step = {"n": 0}

    def clipood_step():
        train_step(exp, x, y)                  # MMS loss (Eq. 3-4), AdamW
        step["n"] += 1
        bma.update(step["n"])                  # Eq. 6-7

    def plain_step():
        train_step(plain, x, y)                # cross-entropy on cosine logits, no averaging

    times = common.interleaved({"clipood": clipood_step, "plain": plain_step}, reps=args.reps,
                               warmup=args.warmup, device=exp.device)
    ratio = common.median(times["clipood"]) / common.median(times["plain"])
    print(f"{'plain fine-tune step':>24}: {common.spread(times['plain'])}")
    print(f"{'CLIPood step (MMS+BMA)':>24}: {common.spread(times['clipood'])}")
    print(f"{'ratio':>24}: {ratio:.3f}  (target <= {TARGET}; BMA every {args.average_every} step(s))")
    info.update(classes=args.classes, average_every=args.average_every, plain_s=times["plain"],
                clipood_s=times["clipood"], ratio=ratio, target=TARGET, met=ratio <= TARGET)
    common.finish(args, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
