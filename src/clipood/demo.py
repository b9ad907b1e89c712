"""The first-run job: zero-shot vs plain fine-tuning vs CLIPood on the bundled default.

The bundled default is offline end to end: the emoji benchmark (``clipood data build
emoji``: the same things drawn by six emoji designers, each designer a domain) and the
small CLIP pretrained by ``clipood pretrain`` on captioned emoji of every designer but
the held-out one (``--arch clipood-emoji-s --pretrained emoji``, docs/pretrained.md).

When those weights are neither shipped nor installed yet, the job first makes them with
``clipood pretrain`` (a short recipe, ``pretrain_steps``; a longer one gives a stronger
backbone, docs/pretrained.md) and installs them as that tag, so later runs reuse them.

The job is a sweep (``sweep.run_sweep``): the held-out designer is never trained on, the
classes are split base/new and only base classes are trained on, three seeds per method.
Finished runs are skipped, so an interrupted demo continues where it stopped. It ends
with the held-out domain's table and the HTML report (``clipood report``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .cache import cache_root
from .methods import get_method
from .report import mean_std
from .tables import markdown_table

METHODS = {m: get_method(m).label for m in ("zeroshot", "finetune", "clipood")}  # name -> table label


@dataclass
class DemoSettings:
    """What the default job runs; one place for its defaults (``clipood demo --help`` shows them)."""

    arch: str = "clipood-emoji-s"
    pretrained: str = "emoji"
    classes: int = 150          # a slice of the benchmark's classes (spread over the sorted list)
    steps: int = 150
    seeds: int = 3
    batch_size: int = 12        # per training domain: 60 images a step with 5 training designers
    lr: float = 1e-4            # a small model pretrained here, not CLIP ViT-B/16 (paper: 5e-6)
    margin_lambda: float = 0.1  # paper's value for domain + open-class shift
    beta: float = 0.5
    pretrain_steps: int = 400   # only when the weights are missing: ~5 min on 2 CPU cores
    pretrain_batch: int = 64
    overrides: dict = field(default_factory=dict)


def demo_spec(root: Path, out: Path, s: DemoSettings):
    from .data.emoji import DEFAULT_HOLDOUT
    from .sweep import spec_from_dict
    return spec_from_dict({
        "name": "demo", "output_dir": str(out), "methods": list(METHODS),
        "holdout": [DEFAULT_HOLDOUT], "seeds": s.seeds, "base_to_new": True,
        "overrides": {
            "model": {"arch": s.arch, "pretrained": s.pretrained},
            "data": {"workers": 0},
            "loss": {"margin_lambda": s.margin_lambda},
            "averaging": {"beta": s.beta},
            "optim": {"lr": s.lr},
            "train": {"steps": s.steps, "batch_size": s.batch_size, "checkpoint_every": 50, "log_every": 10},
            **s.overrides,
        },
        "datasets": [{"name": "emoji", "root": str(root)}],
    }, "demo")


def heldout_table(out: Path, holdout: str) -> str:
    """Held-out designer, base / new / H / all classes: mean ± std over seeds per method.

    The zero-shot row is the evaluation each fine-tuning run makes before its first step (one
    per seed); zero-shot has no randomness, so its std is 0 by construction. The last row is
    chance (a uniform guess), so that low accuracies can be read for what they are."""
    import json

    from .data.splits import base_new_classes
    from .evaluation import harmonic_mean
    rows = {m: [] for m in METHODS}
    num_classes = 0
    for results_path in sorted(out.glob("*/results.json")):
        res = json.loads(results_path.read_text(encoding="utf-8"))
        num_classes = res.get("num_classes", num_classes)
        name = results_path.parent.name
        method = next((m for m in METHODS if m != "zeroshot" and name.startswith(f"emoji-{m}-")), None)
        if method is None:
            continue
        rows[method].append(res["final"][f"{holdout}/in"])
        if method == "finetune" and res.get("zeroshot"):
            rows["zeroshot"].append(res["zeroshot"][f"{holdout}/in"])
    table = [[label] + [mean_std([e[k] for e in rows[m]]) for k in ("base", "new", "H", "accuracy")] + [len(rows[m])]
             for m, label in METHODS.items()]
    if num_classes:
        base, new = (100 / len(c) for c in base_new_classes(num_classes))
        table.append(["chance (uniform guess)", f"{base:.1f}", f"{new:.1f}", f"{harmonic_mean(base, new):.1f}",
                      f"{100 / num_classes:.1f}", "-"])
    return markdown_table(
        [f"method ({holdout} held out, accuracy %)", "base classes", "new classes", "H", "all classes", "seeds"], table)


def ensure_pretrained(s: DemoSettings, data_root: Path, *, progress: bool = True) -> None:
    """Make and install the backbone's weights (held-out designer excluded) unless they exist."""
    from .data.emoji import DEFAULT_HOLDOUT, build_emoji
    from .errors import ModelError
    from .model.backbones import resolve_weights as resolve_pretrained
    try:
        resolve_pretrained(s.arch, s.pretrained)
        return
    except ModelError:
        pass
    from .pretraining.config import PretrainConfig, validate as validate_pretrain
    from .pretraining.trainer import run_pretrain
    build = build_emoji(data_root, max_classes=s.classes, pretrain=True, progress=progress)
    print(f"no '{s.pretrained}' weights for {s.arch} yet: pretraining them ({s.pretrain_steps} steps on "
          f"{build.pretrain_root}/captions.csv, '{DEFAULT_HOLDOUT}' excluded)")
    cfg = PretrainConfig()
    cfg.model.arch = s.arch
    cfg.data.csv = str(Path(build.pretrain_root) / "captions.csv")
    cfg.data.exclude_domains = [DEFAULT_HOLDOUT]
    cfg.data.workers = 0
    cfg.optim.lr = 1e-3
    cfg.optim.warmup_steps = min(100, s.pretrain_steps // 4)
    cfg.train.steps, cfg.train.batch_size = s.pretrain_steps, s.pretrain_batch
    cfg.run.output_dir, cfg.run.install_as = str(cache_root() / "pretrain-runs"), s.pretrained
    run, _ = run_pretrain(validate_pretrain(cfg), progress=progress)
    print(f"installed as --arch {s.arch} --pretrained {s.pretrained} (pretraining run: {run.path})")


def run_demo(out: Path, settings: Optional[DemoSettings] = None, *, data_dir: Optional[Path] = None,
             progress: bool = True, report: bool = True) -> str:
    from .data.emoji import DEFAULT_HOLDOUT, build_emoji
    from .sweep import run_sweep
    s = settings or DemoSettings()
    root = Path(data_dir) if data_dir else cache_root() / "datasets" / f"emoji-{s.classes}"
    ensure_pretrained(s, root, progress=progress)
    build = build_emoji(root, max_classes=s.classes, progress=progress)
    print(build.summary())
    outcome = run_sweep(demo_spec(root, out, s), progress=progress)
    if outcome.failed:
        first = next(iter(outcome.failed.items()))
        from .errors import ClipoodError
        raise ClipoodError(f"demo: {len(outcome.failed)} run(s) failed, e.g. {first[0]}: {first[1]}")
    table = heldout_table(out, DEFAULT_HOLDOUT)
    print(table)
    print(f"\naccuracy on the held-out designer '{DEFAULT_HOLDOUT}' ('in' split), trained on the other designers' "
          f"base classes only; {s.seeds} seed(s), {s.steps} steps; backbone {s.arch} ({s.pretrained}); runs in {out}")
    if report:
        from .reporting.build import build_report
        rep = build_report(out, make_plots=True)
        print(f"report (tables, plots): {rep.html_path}")
    return table
