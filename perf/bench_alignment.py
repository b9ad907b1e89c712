"""Alignment at scale (LiT on locked towers, ``clipood pretrain --lock-image --lock-text``): two ratios.

1. Feature extraction, measured side by side on the same images: the cache's encoder as it was (the tower
   as loaded, ToTensor and Normalize per image) against the fast one (BatchNorms folded into the
   convolutions, normalisation per batch; ``pretraining/lit.py``); images/s of each and their ratio.
2. The LiT step on cached features (clipood's own ``batches`` and ``train_step``) on a small and a large
   caption table, interleaved: a step's cost must not grow with the table (the ratio stays near 1).

Usage::

    .venv/bin/python perf/bench_alignment.py                       # the packaged towers, synthetic images
    .venv/bin/python perf/bench_alignment.py --images DIR          # PNG/JPEG files under DIR (e.g. the demo's set)
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from clipood.data.bad_images import BadImages  # noqa: E402
from clipood.pretraining import lit, trainer  # noqa: E402
from clipood.pretraining.config import PretrainConfig, validate_pretrain  # noqa: E402
from clipood.pretraining.setup import build  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import device_description  # noqa: E402


def _table(folder: Path, images: list[Path], rows: int) -> Path:
    """A caption table of ``rows`` rows over ``images`` (repeated, each row its own caption)."""
    path = folder / f"captions-{rows}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "title", "domain"])
        for i in range(rows):
            w.writerow([str(images[i % len(images)]), f"thing number {i}", "d"])
    return path


def _pretraining(args, table: Path, batch: int):
    cfg = PretrainConfig()
    cfg.model.arch, cfg.model.pretrained = args.arch, args.pretrained
    cfg.model.lock_image = cfg.model.lock_text = True
    cfg.data.csv, cfg.data.workers, cfg.data.val_size, cfg.data.caption_max_tags = str(table), 0, 0, 0
    cfg.train.steps, cfg.train.batch_size, cfg.compute.device = 10_000, batch, "cpu"
    cfg.optim.warmup_steps = 10
    return build(validate_pretrain(cfg))


def _synthetic_images(folder: Path, n: int, size: int) -> list[Path]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        pixels = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
        path = folder / f"{i:05d}.png"
        Image.fromarray(pixels).save(path)
        out.append(path)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="clipood-lite0-minilm")
    p.add_argument("--pretrained", default="towers")
    p.add_argument("--images", help="a folder of images (default: synthetic 128 px images)")
    p.add_argument("--n-images", type=int, default=256, help="images encoded per feature-extraction repetition")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=512, help="LiT batch")
    p.add_argument("--rows", type=int, nargs=2, default=[656, 38_000], help="small and large table sizes")
    p.add_argument("--steps", type=int, default=30, help="LiT steps timed per table and repetition")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="clipood-bench-align-"))
    if args.images:
        images = sorted(x for x in Path(args.images).rglob("*") if x.suffix.lower() in (".png", ".jpg", ".jpeg"))
        images = images[:args.n_images]
    else:
        images = _synthetic_images(folder, args.n_images, 128)
    info = {"arch": args.arch, "pretrained": args.pretrained, "device": device_description(torch.device("cpu")),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}

    # 1. feature extraction, interleaved
    pre = _pretraining(args, _table(folder, images, len(images)), 128)
    pre.model.eval()
    bad = BadImages("fail", pre.table.paths)
    call = (pre.model, pre.table, pre.backbone.preprocess_val, pre.device, None, 0, bad, False)
    lit._encode_images(*call, fast=True)  # warm-up (and the fold's first pass)
    times = {"plain": [], "fast": []}
    for _ in range(args.reps):
        for kind in times:
            t = time.perf_counter()
            lit._encode_images(*call, fast=kind == "fast")
            times[kind].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    info["features"] = {"images": len(images), "plain_ms_per_image": 1000 * med["plain"] / len(images),
                        "fast_ms_per_image": 1000 * med["fast"] / len(images), "speedup": med["plain"] / med["fast"]}

    # 2. the LiT step on cached features, small table against large
    runs = {}
    for rows in args.rows:
        q = _pretraining(args, _table(folder, images, rows), args.batch)
        with torch.no_grad():
            dims = (lit.frozen_image(q.model.eval(), torch.zeros(1, 3, 128, 128)).shape[1],
                    lit.frozen_text(q.model, q.tokens[:1]).shape[1])
        q.features = lit.FrozenFeatures(torch.randn(rows, dims[0]), torch.randn(rows, dims[1]), {})
        lit.set_train_mode(q.model, True)
        runs[rows] = (q, trainer.batches(q, 0))
    step_times = {rows: [] for rows in args.rows}
    for _ in range(args.reps):
        for rows, (q, it) in runs.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                _, idx, _ = next(it)
                trainer.train_step(q, None, idx, None)
            step_times[rows].append((time.perf_counter() - t) / args.steps)
    small, large = (statistics.median(step_times[r]) for r in args.rows)
    info["lit_step"] = {"batch": args.batch, "rows": args.rows, "ms_per_step": [1000 * small, 1000 * large],
                        "pairs_per_s": [args.batch / small, args.batch / large], "large_over_small": large / small}

    f, s = info["features"], info["lit_step"]
    print(f"{args.arch} ({args.pretrained}); {info['device']}, torch {info['torch']}, {info['date']}")
    print("| measure | before / small table | after / large table | ratio |")
    print("|---|---|---|---|")
    print(f"| image features, ms/image ({f['images']} images) | {f['plain_ms_per_image']:.2f} (tower as loaded, "
          f"per-image normalisation) | {f['fast_ms_per_image']:.2f} (BatchNorm folded, batched normalisation) | "
          f"{f['speedup']:.2f}x faster |")
    print(f"| LiT step, ms (batch {s['batch']}) | {s['ms_per_step'][0]:.1f} ({args.rows[0]:,} rows; "
          f"{s['pairs_per_s'][0]:,.0f} pairs/s) | {s['ms_per_step'][1]:.1f} ({args.rows[1]:,} rows; "
          f"{s['pairs_per_s'][1]:,.0f} pairs/s) | {s['large_over_small']:.2f} (large / small) |")
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
