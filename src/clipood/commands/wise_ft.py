"""WiSE-FT: evaluate weight interpolations between the zero-shot and a fine-tuned model.

    theta(alpha) = (1 - alpha) * theta_zeroshot + alpha * theta_finetuned

(Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022), a post-hoc step
on a finished run: no training, one evaluation per alpha. alpha = 0 is the zero-shot
model, alpha = 1 the fine-tuned one. It is a baseline the CLIPood paper does not have;
BMA is a learned-trajectory relative of it (theta_0 keeps a large weight when beta < 1).

The interpolated model chosen by training-domain validation (the mean accuracy of the
training domains' 'out' splits) is exported as the run's model.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file

from ..config import Config
from ..data.bad_images import BadImages
from ..errors import ClipoodError, ModelError
from ..io import write_json
from ..rundir import RunDir
from ..training.experiment import build_experiment
from .export import export_model, read_model_meta
from .run import environment, evaluate_experiment, preflight, results_summary

__all__ = ["alpha_key", "interpolate", "run_wise_ft", "validation_score"]


def interpolate(theta0: dict[str, torch.Tensor], theta1: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) theta0 + alpha theta1 for floating tensors; other tensors are taken from theta1."""
    if theta0.keys() != theta1.keys():
        missing = sorted(set(theta0) ^ set(theta1))[:3]
        raise ModelError(f"WiSE-FT: the fine-tuned and zero-shot models have different tensors ({missing})")
    out = {}
    for k, a in theta0.items():
        b = theta1[k]
        if torch.is_floating_point(a):
            out[k] = torch.lerp(a.float(), b.float().to(a.device), float(alpha)).to(a.dtype)
        else:
            out[k] = b
    return out


def validation_score(evals: dict, base_to_new: bool) -> float:
    """Mean accuracy over the training domains' 'out' splits (base classes with a class split)."""
    metric = "base" if base_to_new else "accuracy"
    vals = [e[metric] for e in evals.values() if e.get("role") == "val" and not math.isnan(e.get(metric, math.nan))]
    return sum(vals) / len(vals) if vals else math.nan


def alpha_key(alpha: float) -> str:
    return f"alpha={alpha:g}"


def run_wise_ft(finetuned: Path, cfg: Config, alphas: Sequence[float], *, progress: bool = True
                ) -> tuple[RunDir, dict]:
    """Evaluate theta(alpha) for every alpha; ``cfg`` names the new run (output_dir, name).

    ``finetuned`` is a finished training run whose head is the class-text head (the
    zero-shot classifier), e.g. the 'finetune' method's run with the same data and seed.
    """
    ft = RunDir(finetuned)
    ft_results = ft.results()
    if ft_results is None or ft_results.get("kind") != "train":
        raise ClipoodError(f"WiSE-FT: {finetuned} is not a finished training run (no results.json); run it first")
    meta = read_model_meta(ft.model_dir)
    if meta.get("head") != "text":
        raise ModelError(f"WiSE-FT: {finetuned} trained a linear head; interpolation needs the class-text head "
                         f"(use a 'finetune' or CLIPood run)")
    if not alphas or any(not (0.0 <= a <= 1.0) for a in alphas):
        raise ClipoodError(f"WiSE-FT: alphas must be in [0, 1], got {list(alphas)}")
    _, ft_cfg = RunDir.open(ft.path)
    cfg = copy.deepcopy(cfg)
    for section in ("model", "data", "loss"):  # the fine-tuned run's model, data protocol and head
        setattr(cfg, section, copy.deepcopy(getattr(ft_cfg, section)))
    cfg.averaging.name = "none"
    data = preflight(cfg)
    run = RunDir.create(cfg)
    try:
        return _wise_ft_in(run, ft, ft_results, cfg, data, alphas, progress)
    finally:
        run.release()


def _wise_ft_in(run: RunDir, ft: RunDir, ft_results: dict, cfg: Config, data, alphas: Sequence[float],
                progress: bool) -> tuple[RunDir, dict]:
    exp = build_experiment(cfg, data=data)
    model = exp.backbone.model
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    theta1 = load_file(str(ft.model_dir / "open_clip_model.safetensors"), device=str(exp.device))
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    per_alpha: dict[str, dict] = {}
    for alpha in alphas:
        model.load_state_dict(interpolate(theta0, theta1, alpha))
        per_alpha[alpha_key(alpha)] = evaluate_experiment(exp, bad, progress=progress, desc=f"WiSE-FT {alpha:g}")
        run.log({"alpha": alpha, "eval": per_alpha[alpha_key(alpha)]})
    scores = {a: validation_score(per_alpha[alpha_key(a)], cfg.data.base_to_new) for a in alphas}
    valid = {a: s for a, s in scores.items() if not math.isnan(s)}
    chosen = max(valid, key=lambda a: (valid[a], -abs(a - 0.5))) if valid else min(alphas, key=lambda a: abs(a - 0.5))
    model.load_state_dict(interpolate(theta0, theta1, chosen))
    export_model(exp, run.model_dir)
    results = {
        "kind": "wise-ft", "base_run": str(ft.path), "method": ft_results.get("method"),
        **results_summary(exp), "seed": cfg.train.seed, "steps": ft_results.get("steps"),
        "alphas": list(alphas), "variants": per_alpha, "selected_alpha": chosen,
        "selection": "training-domain validation" if valid else "no validation split: alpha closest to 0.5",
        "zeroshot": ft_results.get("zeroshot"), "final": per_alpha[alpha_key(chosen)],
        "environment": environment(exp),
    }
    write_json(run.path / "results.json", results)
    return run, results
