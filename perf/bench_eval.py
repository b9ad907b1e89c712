"""Evaluation throughput: clipood's batched scoring vs re-encoding the class texts for every batch.

clipood encodes the class texts once (``encode_class_texts``), then per image batch runs
the image tower once and scores all classes with one matrix product (``ClassWeights``).
The naive loop, common in fine-tuning scripts, runs the text tower over every class
prompt again for each image batch. Both score the same images (held in memory: decoding
is the same for both and left out); the passes are interleaved and images/s printed.

    python perf/bench_eval.py                                  # CPU default
    python perf/bench_eval.py --arch ViT-B-16 --device cuda --classes 1000 --batch 256 --images 4096
"""

from __future__ import annotations

import argparse
import sys

import common
import torch

from clipood.evaluation import ClassWeights
from clipood.model import ImageClassifier, TextHead, encode_class_texts, load_backbone
from clipood.training.device import resolve_device, resolve_precision


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(p, arch="ViT-B-32", batch=32, reps=3)
    p.add_argument("--classes", type=int, default=65, help="classes scored (default 65, OfficeHome).")
    p.add_argument("--images", type=int, default=64, help="images per evaluation pass (default 64).")
    p.set_defaults(warmup=1)  # the checking pass below is the warm-up
    args = p.parse_args(argv)
    common.setup(args)

    device = resolve_device(args.device)
    amp = resolve_precision(args.precision, device)
    backbone = load_backbone(args.arch, None, device=device)
    model, tok = backbone.model.eval(), backbone.tokenizer
    names = [f"class {i}" for i in range(args.classes)]
    templates = ["a photo of a {}."]
    text = encode_class_texts(model, tok, names, templates)
    classifier = ImageClassifier(model.visual, TextHead(text)).eval()
    size = backbone.preprocess_cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    images = torch.randn(args.images, 3, size, size, device=device)
    batches = images.split(args.batch)

    info = common.header("evaluation: batched scoring vs per-batch class-text re-encoding", args, device, amp)

    def autocast():
        return torch.autocast(device.type, dtype=amp, enabled=amp is not None)

    @torch.no_grad()
    def batched():
        weights = ClassWeights(encode_class_texts(model, tok, names, templates))  # once per evaluation
        preds = []
        for x in batches:
            with autocast():
                f = classifier.features(x)
            preds.append(weights.scores(f.float()).argmax(1))
        return torch.cat(preds)

    @torch.no_grad()
    def naive():
        preds = []
        for x in batches:
            weights = ClassWeights(encode_class_texts(model, tok, names, templates))  # again, every batch
            with autocast():
                f = classifier.features(x)
            preds.append(weights.scores(f.float()).argmax(1))
        return torch.cat(preds)

    # one untimed pass of each warms up and checks that both loops predict the same classes
    if not torch.equal(batched(), naive()):
        print("warning: the two loops disagree on some predictions (numerical ties)")
    times = common.interleaved({"batched": batched, "naive": naive}, reps=args.reps,
                               warmup=max(0, args.warmup - 1), device=device)
    ips = {k: args.images / common.median(v) for k, v in times.items()}
    print(f"{'classes, images':>34}: {args.classes}, {args.images} (batch {args.batch})")
    print(f"{'naive (texts re-encoded per batch)':>34}: {ips['naive']:9.1f} images/s")
    print(f"{'clipood (texts once, one matmul)':>34}: {ips['batched']:9.1f} images/s")
    print(f"{'speed-up':>34}: {ips['batched'] / ips['naive']:.2f}x")
    info.update(classes=args.classes, images=args.images, batched_images_per_s=ips["batched"],
                naive_images_per_s=ips["naive"], speedup=ips["batched"] / ips["naive"])
    common.finish(args, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
