"""The official code's fp16 weight storage and fp16 BMA against clipood's fp32, measured (docs/method.md).

One model is fine-tuned four times from the same weights on the same batches (clipood's own loop: the
MMS loss, AdamW with weight decay 0.1, the cosine schedule, BMA with beta 0.5):

* official: ``--master-weights fp16 --average-precision fp16 --grad-clip none`` (the official code);
* fp32: everything fp32, no clipping;
* fp16 storage, fp32 average: the official trajectory averaged exactly, to isolate the fp16 average's error;
* clipood: fp32 with ``--grad-clip 1.0`` (clipood's default).

For the tensors the official code stores in fp16 (Linear/Conv weights and biases, attention
in-projections, the projection) it prints, per learning rate:

* the displacement ||theta_T - theta_0|| of the official run over the fp32 run's: how much of the
  fine-tuning survives fp16 storage; and the share of those weights that never moved from theta_0;
* the fp16 average's error against the exact average of the same trajectory, relative to that
  average's own distance from theta_0;
* the gradient norm of each fp32 step (what ``--grad-clip 1.0`` bounds), how many steps exceed 1.0,
  and what clipping changes: the clipped run's displacement over the unclipped one's and the cosine
  between their updates theta_T - theta_0.

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


def run(args, root: str, lr: float, storage: str, average: str, clip=None) -> dict:
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = args.arch, args.pretrained
    cfg.data.root, cfg.data.workers = root, 0
    cfg.data.holdout_domains = [args.holdout] if args.holdout else []
    cfg.train.steps, cfg.train.batch_size, cfg.train.seed = args.steps, args.batch_per_domain, 0
    cfg.compute.device, cfg.compute.precision, cfg.train.checkpoint_every = "cpu", "fp32", 0
    cfg.optim.lr, cfg.optim.grad_clip = lr, clip
    cfg.averaging.beta = 0.5
    cfg.train.master_weights, cfg.averaging.precision = storage, average
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
        print(f"  {storage}/{average}/clip {clip} lr {lr:g}: step {step}/{args.steps} grad norm {norms[-1]:.3g}",
              file=sys.stderr, flush=True)
    final = [t.detach().clone() for t in stored]
    exp.averager.copy_to()
    bma = [t.detach().clone() for t in stored]
    n = sum(t.numel() for t in theta0)

    def moved(xs):
        return {"displacement": math.sqrt(sum(float((x - t0).double().pow(2).sum()) for x, t0 in zip(xs, theta0))),
                "unmoved_share": sum(int((x == t0).sum()) for x, t0 in zip(xs, theta0)) / n}
    return {"final": moved(final), "bma": moved(bma), "grad_norms": norms, "weights": n, "fp16_tensors": len(ids),
            "theta0": theta0, "final_tensors": final, "bma_tensors": bma}


def _norm(xs) -> float:
    return math.sqrt(sum(float(x.double().pow(2).sum()) for x in xs))


def _diff(xs, ys) -> list:
    return [x - y for x, y in zip(xs, ys)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ViT-S-32")
    p.add_argument("--pretrained", default="none", help="weights (default: none, open_clip's initialisation)")
    p.add_argument("--root", help="an image folder (domains/classes); default: the shapes dataset, generated")
    p.add_argument("--holdout", default="sketch", help="domain left out (default sketch: 3 domains, batch 36)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-per-domain", type=int, default=12)
    p.add_argument("--lr", type=float, nargs="+", default=[5e-6, 1e-5])
    p.add_argument("--grad-norms-only", action="store_true", help="only the fp32 run's gradient norms (for "
                   "large towers: one run instead of four)")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.root or str(make_shapes_dataset(Path(tempfile.mkdtemp(prefix="clipood-prec-")), per_class=12,
                                                size=64))
    out = {"arch": args.arch, "pretrained": args.pretrained, "steps": args.steps, "torch": torch.__version__,
           "device": device_description(torch.device("cpu")), "runs": {}}
    if args.grad_norms_only:
        for lr in args.lr:
            norms = run(args, root, lr, "fp32", "fp32")["grad_norms"]
            out["runs"][str(lr)] = {"grad_norms_fp32": norms, "steps_over_1": sum(x > 1.0 for x in norms)}
            print(f"{args.arch} ({args.pretrained}), lr {lr:g}, batch {args.batch_per_domain} per domain: gradient "
                  f"norms {', '.join(f'{x:.3g}' for x in norms)}; {out['runs'][str(lr)]['steps_over_1']}/{len(norms)} "
                  f"steps above 1.0; {out['device']}, torch {torch.__version__}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        return 0
    rows = []
    for lr in args.lr:
        official, fp32 = run(args, root, lr, "fp16", "fp16"), run(args, root, lr, "fp32", "fp32")
        exact, clipped = run(args, root, lr, "fp16", "fp32"), run(args, root, lr, "fp32", "fp32", clip=1.0)
        t0 = official["theta0"]
        bma_error = _norm(_diff(official["bma_tensors"], exact["bma_tensors"])) / _norm(_diff(exact["bma_tensors"], t0))
        u, v = _diff(clipped["final_tensors"], t0), _diff(fp32["final_tensors"], t0)
        cosine = sum(float((a.double() * b.double()).sum()) for a, b in zip(u, v)) / (_norm(u) * _norm(v))
        norms = fp32["grad_norms"]
        figures = {"displacement_ratio": official["final"]["displacement"] / fp32["final"]["displacement"],
                   "unmoved_fp16": official["final"]["unmoved_share"], "unmoved_fp32": fp32["final"]["unmoved_share"],
                   "fp16_average_relative_error": bma_error, "grad_norms_fp32": norms,
                   "steps_over_1": sum(x > 1.0 for x in norms),
                   "clip_displacement_ratio": clipped["final"]["displacement"] / fp32["final"]["displacement"],
                   "clip_update_cosine": cosine}
        out["runs"][str(lr)] = figures
        rows.append(f"| {lr:g} | {figures['displacement_ratio']:.3f} | {figures['unmoved_fp16']:.1%} | "
                    f"{figures['unmoved_fp32']:.1%} | {bma_error:.3f} | {min(norms):.3g} / "
                    f"{sorted(norms)[len(norms) // 2]:.3g} / {max(norms):.3g} | "
                    f"{figures['steps_over_1']}/{len(norms)} | "
                    f"{figures['clip_displacement_ratio']:.3f}, cos {cosine:.4f} |")
    print(f"{args.arch} ({args.pretrained}), {args.steps} steps, batch {args.batch_per_domain} per domain, "
          f"{official['weights']:,} fp16-stored weights; {out['device']}, torch {torch.__version__}")
    print("| lr | displacement official / fp32 | unmoved (official) | unmoved (fp32) | fp16 average error / its "
          "displacement | grad norm min / median / max | steps with norm > 1 | clip 1.0: displacement ratio, "
          "update cosine |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
