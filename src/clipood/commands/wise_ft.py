"""WiSE-FT: evaluate weight interpolations between two models of one architecture.

    theta(alpha) = (1 - alpha) * theta_A + alpha * theta_B

(Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022), a post-hoc step:
no training, one evaluation per alpha. ``run_wise_ft`` takes A = the zero-shot model and
B = a finished run's weights (the sweep's 'wise-ft' method); ``wise_ft_models`` takes any
two models (``clipood wise-ft MODEL_A MODEL_B``: zero-shot with fine-tuned, CLIPood with zero-shot,
...; exported or plain open_clip folders, and A may be any CLIP by name: ``--arch NAME
--pretrained TAG``). It is a baseline the CLIPood paper does not have; BMA is a
learned-trajectory relative of it (theta_0 keeps a large weight when beta < 1).

The interpolated model chosen by training-domain validation (the mean accuracy of the
training domains' 'out' splits) is exported as the run's model.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..config import Config, validate
from ..data.bad_images import BadImages
from ..errors import ClipoodError, ModelError
from ..io import write_json
from ..model.backbones import planned_model_cfg
from ..model.finite import load_weights
from ..model.heads import TextHead, encode_class_texts
from ..model.weights import architecture_difference, check_arch, read_folder_config, weights_file
from ..rundir import RunDir
from ..training.experiment import Model, build_model
from .export import export_model, exported_model_dir, is_export, read_model_meta
from .run import environment, evaluate_model, preflight, results_summary, use_model_folder

__all__ = ["alpha_key", "alpha_plot", "interpolate", "parse_alphas", "run_wise_ft", "validation_score",
           "wise_ft_models", "wise_ft_table"]


def interpolate(theta0: dict[str, torch.Tensor], theta1: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) theta0 + alpha theta1 for floating tensors; other tensors are taken from theta1."""
    if theta0.keys() != theta1.keys():
        missing = sorted(set(theta0) ^ set(theta1))[:3]
        raise ModelError(f"WiSE-FT: the two models have different tensors ({missing}); interpolate models of one "
                         f"architecture")
    shapes = [k for k in theta0 if theta0[k].shape != theta1[k].shape]
    if shapes:
        raise ModelError(f"WiSE-FT: tensor {shapes[0]} has shape {tuple(theta0[shapes[0]].shape)} in one model and "
                         f"{tuple(theta1[shapes[0]].shape)} in the other; interpolate models of one architecture")
    out = {}
    for k, a in theta0.items():
        b = theta1[k]
        if torch.is_floating_point(a):
            out[k] = torch.lerp(a.float(), b.float().to(a.device), float(alpha)).to(a.dtype)
        else:
            out[k] = b
    return out


def load_interpolated(exp: Model, theta: dict[str, torch.Tensor]) -> None:
    """Put theta into the model and encode the class texts again: a text tower that was trained (FLYP) is
    interpolated too, so the classifier is the mixed text tower's, not the one encoded at load."""
    model = exp.backbone.model
    model.load_state_dict(theta)
    exp.text_features = encode_class_texts(model, exp.backbone.tokenizer, exp.index.class_names, exp.templates)
    exp.classifier.head = TextHead(exp.text_features[exp.splits.train_classes]).to(exp.device)


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
    if meta.get("head", "text") != "text":
        raise ModelError(f"WiSE-FT: {finetuned} trained a {meta['head']} head; interpolation needs the class-text "
                         f"head (use a 'finetune', CLIPood or FLYP run)")
    if not alphas or any(not (0.0 <= a <= 1.0) for a in alphas):
        raise ClipoodError(f"WiSE-FT: alphas must be in [0, 1], got {list(alphas)}")
    _, ft_cfg = RunDir.open(ft.path)
    cfg = copy.deepcopy(cfg)
    for section in ("model", "data", "loss"):  # the fine-tuned run's model, data protocol and head
        setattr(cfg, section, copy.deepcopy(getattr(ft_cfg, section)))
    cfg = validate(cfg, training=False)
    data = preflight(cfg)
    run = RunDir.create(cfg)
    try:
        about = {"base_run": str(ft.path), "method": ft_results.get("method"), "steps": ft_results.get("steps"),
                 "zeroshot": ft_results.get("zeroshot")}
        return _wise_ft_in(run, ft.model_dir, about, cfg, data, alphas, progress)
    finally:
        run.release()


def _check_model_dir(path: Path, which: str) -> Path:
    path = exported_model_dir(path, which)
    head = read_model_meta(path).get("head", "text") if is_export(path) else "text"
    if head != "text":
        raise ModelError(f"{which}: {path} was trained with a {head} head; interpolation needs the class-text head "
                         f"(a 'finetune', CLIPood or FLYP run, or a zero-shot model)")
    return path


def _architecture(model_dir: Optional[Path], cfg: Config, which: str) -> dict:
    """The model config a model is built with: a folder's open_clip_config.json, or what cfg.model names. quick_gelu
    absent means GELU (open_clip's default), so a folder that does not name it equals one that says False."""
    if model_dir is not None:
        return {"quick_gelu": False, **read_folder_config(model_dir, which)["model_cfg"]}
    return {"quick_gelu": False, **planned_model_cfg(cfg.model.arch, cfg.model.pretrained, cfg.model.activation)}


def wise_ft_models(model_a: Optional[Path], model_b: Path, cfg: Config, alphas: Sequence[float], *,
                   progress: bool = True) -> tuple[RunDir, dict]:
    """theta(alpha) = (1 - alpha) A + alpha B for every alpha, evaluated with ``cfg``'s data protocol.

    A is a model folder, or (``model_a`` None) the CLIP cfg.model names (--arch, --pretrained: e.g. the pre-trained
    CLIP B was fine-tuned from). A gives the architecture, the preprocessing and (from its clipood.json, when it has
    one) the templates; B must be of the same architecture. ``cfg`` names the run (output_dir, name)."""
    b = _check_model_dir(model_b, "MODEL_B")
    cfg = copy.deepcopy(cfg)
    if model_a is not None:
        a = _check_model_dir(model_a, "MODEL_A")
        use_model_folder(cfg, a)
        about_a, name_a = str(a.resolve()), str(a)
    else:
        check_arch(cfg.model.arch, cfg.model.pretrained)
        a, name_a = None, f"--arch {cfg.model.arch} --pretrained {cfg.model.pretrained}"
        about_a = f"{cfg.model.arch} ({cfg.model.pretrained})"
    diff = architecture_difference(_architecture(a, cfg, "MODEL_A"), _architecture(b, cfg, "MODEL_B"), here="in B")
    if diff:
        raise ModelError(f"WiSE-FT: {name_a} and {b} are different architectures ({diff}); interpolate models of one "
                         f"architecture")
    if not alphas or any(not (0.0 <= x <= 1.0) for x in alphas):
        raise ClipoodError(f"--alphas: alphas must be in [0, 1], got {list(alphas)}")
    cfg.run.name = cfg.run.name or f"wise-ft-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = validate(cfg, training=False)
    data = preflight(cfg, training=False)
    run = RunDir.create(cfg)
    try:
        return _wise_ft_in(run, b, {"model_a": about_a, "model_b": str(b.resolve())}, cfg, data, alphas, progress)
    finally:
        run.release()


def _wise_ft_in(run: RunDir, model_b: Path, about: dict, cfg: Config, data, alphas: Sequence[float],
                progress: bool) -> tuple[RunDir, dict]:
    exp = build_model(cfg, data=data)
    model = exp.backbone.model
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    theta1 = load_weights(weights_file(model_b), str(exp.device))
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    per_alpha: dict[str, dict] = {}
    for alpha in alphas:
        load_interpolated(exp, interpolate(theta0, theta1, alpha))
        per_alpha[alpha_key(alpha)] = evaluate_model(exp, bad, progress=progress, desc=f"WiSE-FT {alpha:g}")
        run.log({"alpha": alpha, "eval": per_alpha[alpha_key(alpha)]})
    scores = {a: validation_score(per_alpha[alpha_key(a)], cfg.data.base_to_new) for a in alphas}
    valid = {a: s for a, s in scores.items() if not math.isnan(s)}
    chosen = max(valid, key=lambda a: (valid[a], -abs(a - 0.5))) if valid else min(alphas, key=lambda a: abs(a - 0.5))
    load_interpolated(exp, interpolate(theta0, theta1, chosen))
    export_model(exp, run.model_dir)
    results = {
        "kind": "wise-ft", **about, **results_summary(exp), "seed": cfg.train.seed,
        "alphas": list(alphas), "variants": per_alpha, "selected_alpha": chosen,
        "selection": "training-domain validation" if valid else "no validation split: alpha closest to 0.5",
        "final": per_alpha[alpha_key(chosen)], "environment": environment(exp),
    }
    write_json(run.path / "results.json", results)
    return run, results


MAX_ALPHAS = 1001  # each alpha is an evaluation of every split: 0:1:0.001 is already hours on a large set


def parse_alphas(text: str) -> list[float]:
    """'0:1:0.1' (start:stop:step, stop included) or '0,0.5,1'; at most MAX_ALPHAS of them, counted before
    any list is made."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not (step > 0 and math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)):
                raise ValueError
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_ALPHAS:
                raise ClipoodError(f"--alphas: {text!r} gives {count:.3g} alphas; at most {MAX_ALPHAS} (each is an "
                                   f"evaluation of every split): use a larger step")
            alphas = [round(start + i * step, 10) for i in range(max(int(count), 0))]
        else:
            alphas = [float(x) for x in text.split(",") if x.strip()]
            if len(alphas) > MAX_ALPHAS:
                raise ClipoodError(f"--alphas: {len(alphas)} alphas; at most {MAX_ALPHAS}")
    except ValueError:
        raise ClipoodError(f"--alphas: {text!r} is not START:STOP:STEP (e.g. 0:1:0.1) or a list (0,0.5,1)") from None
    if len(set(alphas)) != len(alphas):
        raise ClipoodError(f"--alphas: {text!r} gives an alpha twice; each is evaluated once")
    if not alphas or any(not (0.0 <= a <= 1.0) for a in alphas):
        raise ClipoodError(f"--alphas: {text!r} gives {alphas}; every alpha must be in [0, 1]")
    return alphas


def _columns(results: dict) -> list[tuple[str, str, str]]:
    """(label, split name, metric) for the table: validation first, then each evaluated split."""
    first = next(iter(results["variants"].values()))
    b2n = any("H" in e for e in first.values())
    cols = [("validation", "", "val")]
    for name, e in first.items():
        if e.get("role") == "val":
            continue
        metrics = ("base", "new", "H") if "H" in e else ("accuracy",)
        cols += [(f"{name} {m}" if b2n or len(metrics) > 1 else name, name, m) for m in metrics]
    return cols


def wise_ft_table(results: dict) -> str:
    """Accuracy (%) per alpha and split; the alpha chosen by training-domain validation marked."""
    from ..reporting.text import markdown_table
    cols = _columns(results)
    rows = []
    for a in results["alphas"]:
        ev = results["variants"][alpha_key(a)]
        cells = []
        for _, name, m in cols:
            v = validation_score(ev, any("H" in e for e in ev.values())) if m == "val" else ev[name].get(m)
            cells.append("-" if v is None or v != v else f"{100 * v:.1f}")
        rows.append([f"{a:g}" + (" (chosen)" if a == results["selected_alpha"] else ""), *cells])
    return markdown_table(["alpha", *[c[0] for c in cols]], rows)


def alpha_plot(results: dict, path: Path) -> Path:
    """Accuracy against alpha, a marker at every evaluated alpha, the chosen one drawn as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path
    alphas = results["alphas"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, name, m in _columns(results):
        ys = []
        for a in alphas:
            ev = results["variants"][alpha_key(a)]
            ys.append(validation_score(ev, any("H" in e for e in ev.values())) if m == "val" else ev[name].get(m))
        ax.plot(alphas, [100 * y if y is not None else float("nan") for y in ys], marker="o", label=label)
    ax.axvline(results["selected_alpha"], color="grey", ls="--", lw=1, label="chosen (validation)")
    ax.set_xlabel("alpha (0: model A, 1: model B)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
