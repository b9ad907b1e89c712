"""Shared pieces of the speed and memory scripts: a throw-away dataset, real experiments, side-by-side timing.

Every benchmark times the things it compares *interleaved* (A, B, A, B, ...) in one
process and reports medians and their ratio, so a machine that is busy or throttled
slows both sides alike and the ratio stays meaningful.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from clipood.config import Config  # noqa: E402
from clipood.training.experiment import Experiment, build_experiment  # noqa: E402


def add_common_args(p: argparse.ArgumentParser, *, arch: str, batch: int, reps: int) -> None:
    p.add_argument("--arch", default=arch, help=f"open_clip architecture, random weights (default {arch}).")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda.")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast: auto = bf16 on CUDA, fp32 on CPU (as clipood train).")
    p.add_argument("--batch", type=int, default=batch, help=f"images per step (default {batch}).")
    p.add_argument("--reps", type=int, default=reps, help=f"timed repetitions of each variant (default {reps}).")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions of each variant first.")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file.")


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)


def synthetic_root(classes: int, domains: int = 2) -> Path:
    """ROOT/<domain>/<class>/0.png: one tiny image per class and domain (the scripts feed tensors)."""
    root = Path(tempfile.mkdtemp(prefix="clipood-bench-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    img = Image.new("RGB", (8, 8), (128, 64, 32))
    for d in range(domains):
        for c in range(classes):
            folder = root / f"domain{d}" / f"class {c:04d}"
            folder.mkdir(parents=True)
            img.save(folder / "0.png")
    return root


def experiment(args, *, classes: int, loss: str = "mms", averaging: str = "bma", steps: int = 100_000,
               **train) -> Experiment:
    """A real clipood Experiment (build_experiment): model, MMS loss, AdamW, averager."""
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = args.arch, None
    cfg.data.root, cfg.data.val_fraction, cfg.data.workers = str(synthetic_root(classes)), 0.0, 0
    cfg.loss.name, cfg.averaging.name = loss, averaging
    cfg.train.steps, cfg.compute.device, cfg.compute.precision = steps, args.device, args.precision
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return build_experiment(cfg)


def image_size(exp: Experiment) -> int:
    size = exp.backbone.preprocess_cfg.get("size", 224)
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def batch(exp: Experiment, n: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = image_size(exp)
    x = torch.randn(n, 3, s, s, device=exp.device)
    if exp.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (n,), device=exp.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], *, reps: int, warmup: int,
                device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in turns (the order rotates every round)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            fns[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    """median [min-max] in ms."""
    return f"{1e3 * median(xs):9.2f} ms  [{1e3 * min(xs):.2f}-{1e3 * max(xs):.2f}]"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def header(title: str, args, device: torch.device, autocast_dtype: Optional[torch.dtype]) -> dict:
    """Print (and return) what the figures depend on: date, device, versions, model, precision."""
    info = {"benchmark": title, "date": datetime.date.today().isoformat(), "device": device_description(device),
            "torch": torch.__version__, "arch": args.arch, "batch": args.batch, "reps": args.reps,
            "precision": str(autocast_dtype).replace("torch.", "") if autocast_dtype else "fp32"}
    print(f"# {title}")
    for k in ("date", "device", "torch", "arch", "precision", "batch", "reps"):
        print(f"{k:>10}: {info[k]}")
    return info


def finish(args, info: dict) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2) + "\n")
        print(f"figures written to {args.json}")


def rss_bytes() -> int:
    """Resident memory of this process (Linux), for CPU memory deltas."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
