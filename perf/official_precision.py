"""The official code's fp16 weight storage and fp16 BMA against clipood's fp32, measured (docs/method.md).

One model is fine-tuned twice from the same weights on the same batches (clipood's own loop: the MMS
loss, AdamW with weight decay 0.1, the cosine schedule, no gradient clipping, BMA with beta 0.5), once
with ``--master-weights fp16 --average-precision fp16`` (the official code's storage) and once in fp32.
For the tensors the official code stores in fp16 (Linear/Conv weights and biases, attention
in-projections, the projection) it prints, per learning rate:

* the displacement ||theta_T - theta_0|| of each run and their ratio (fp16 / fp32): how much of the
  fine-tuning survives fp16 storage;
* the share of those weights that never moved from theta_0;
* the same for the BMA models (what is evaluated);
* the gradient norm of each fp32 step (what ``--grad-clip 1.0`` bounds) and how many steps exceed 1.0.

The figures are properties of the weights' magnitudes against the learning rate, not of timing: a busy
machine changes nothing but the wall time. Usage::

    .venv/bin/python perf/official_precision.py --arch ViT-S-32 --steps 60 --lr 5e-6 1e-5
    .venv/bin/python perf/official_precision.py --arch clipood-lite0-minilm --pretrained towers
    .venv/bin/python perf/official_precision.py --arch ViT-B-16 --steps 8 --lr 5e-6   # grad norms at ViT-B/16 size
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from clipood.config import Config  # noqa: E402
from clipood.data.synthetic import make_shapes_dataset  # noqa: E402
from clipood.training.experiment import build_experiment  # noqa: E402
from clipood.training.loop import train_loader, train_step  # noqa: E402
from clipood.training.storage import fp16_stored  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import device_description  # noqa: E402


def run(args, root: str, lr: float, fp16: bool) -> dict:
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = args.arch, args.pretrained
    cfg.data.root, cfg.data.workers = root, 0
    cfg.data.holdout_domains = [args.holdout] if args.holdout else []
    cfg.train.steps, cfg.train.batch_size, cfg.train.seed = args.steps, args.batch_per_domain, 0
    cfg.train.device, cfg.train.precision, cfg.train.checkpoint_every = "cpu", "fp32", 0
    cfg.optim.lr, cfg.optim.grad_clip = lr, None
    cfg.averaging.beta = 0.5
    cfg.train.master_weights = cfg.averaging.precision = "fp16" if fp16 else "fp32"
    torch.manual_seed(0)
    exp = build_experiment(cfg)
    stored = fp16_stored(exp.classifier.visual)
    ids = {id(t) for t in stored}
    theta0 = [t.detach().clone() for t in stored]
    labels = torch.as_tensor(exp.index.labels)
    params = [p for g in exp.optimizer.param_groups for p in g["params"]]
    norms = []
    exp.classifier.train()
    for step, (images, idx, _) in enumerate(train_loader(exp, 0), start=1):
        train_step(exp, images, exp.label_map[labels[idx]])
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [p.grad.detach().float().norm() for p in params if p.grad is not None]))))
        exp.averager.update(step)
        print(f"  {'fp16' if fp16 else 'fp32'} lr {lr:g}: step {step}/{args.steps} grad norm {norms[-1]:.3g}",
              file=sys.stderr, flush=True)
    final = [t.detach().clone() for t in stored]
    exp.averager.copy_to()
    bma = [t.detach().clone() for t in stored]
    n = sum(t.numel() for t in theta0)

    def moved(xs):
        return {"displacement": math.sqrt(sum(float((x - t0).double().pow(2).sum()) for x, t0 in zip(xs, theta0))),
                "unmoved_share": sum(int((x == t0).sum()) for x, t0 in zip(xs, theta0)) / n}
    return {"final": moved(final), "bma": moved(bma), "grad_norms": norms, "weights": n,
            "fp16_tensors": len(ids)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ViT-S-32")
    p.add_argument("--pretrained", default="none", help="weights (default: none, open_clip's initialisation)")
    p.add_argument("--root", help="an image folder (domains/classes); default: the shapes dataset, generated")
    p.add_argument("--holdout", default="sketch", help="domain left out (default sketch: 3 domains, batch 36)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-per-domain", type=int, default=12)
    p.add_argument("--lr", type=float, nargs="+", default=[5e-6, 1e-5])
    p.add_argument("--threads", type=int)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.root or str(make_shapes_dataset(Path(tempfile.mkdtemp(prefix="clipood-prec-")), per_class=12,
                                                size=64))
    out = {"arch": args.arch, "pretrained": args.pretrained, "steps": args.steps, "torch": torch.__version__,
           "device": device_description(torch.device("cpu")), "runs": {}}
    rows = []
    for lr in args.lr:
        a, b = run(args, root, lr, fp16=True), run(args, root, lr, fp16=False)
        out["runs"][str(lr)] = {"fp16": a, "fp32": b}
        over = sum(x > 1.0 for x in b["grad_norms"])
        rows.append(f"| {lr:g} | {a['final']['displacement'] / b['final']['displacement']:.3f} | "
                    f"{a['final']['unmoved_share']:.1%} | {b['final']['unmoved_share']:.1%} | "
                    f"{a['bma']['displacement'] / b['bma']['displacement']:.3f} | "
                    f"{min(b['grad_norms']):.3g} / {sorted(b['grad_norms'])[len(b['grad_norms']) // 2]:.3g} / "
                    f"{max(b['grad_norms']):.3g} | {over}/{len(b['grad_norms'])} |")
    print(f"{args.arch} ({args.pretrained}), {args.steps} steps, batch {args.batch_per_domain} per domain, "
          f"{out['runs'][str(args.lr[0])]['fp16']['weights']:,} fp16-stored weights; {out['device']}, "
          f"torch {torch.__version__}")
    print("| lr | displacement fp16 / fp32 | unmoved (fp16) | unmoved (fp32) | BMA displacement fp16 / fp32 | "
          "grad norm min / median / max (fp32) | steps with norm > 1 |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
