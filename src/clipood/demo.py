"""The first-run job: zero-shot vs plain fine-tuning vs CLIPood on the bundled default.

The bundled default is offline end to end. The data is the emoji benchmark (``clipood
data build emoji``: the same things drawn by six emoji designers, each designer a
domain). The backbone is ``clipood-lite0-minilm``: an ImageNet EfficientNet-Lite0 and the
all-MiniLM-L6-v2 sentence encoder, both shipped in PyPI packages, made into one CLIP by
aligning their projections (LiT) on emoji. The held-out designer (openmoji) is never
aligned or fine-tuned on; the job fine-tunes on three designers (emojione, fluent,
fluent-mono), base classes only, and reports the held-out designer on base and new
classes. Two regimes say what the backbone saw first (docs/benchmark.md):

* ``paper`` (the default): aligned on every designer but the held-out one, as CLIP was
  pretrained on web images of many styles, never the test images; fine-tuning can then
  erode what the backbone knew, the regime the paper's claim is about;
* ``disjoint``: aligned on two other designers only (noto, twemoji), so alignment,
  fine-tuning and test designers are three disjoint sets and the backbone knows little of
  the fine-tuning designers.

New classes are new to fine-tuning, not to the backbone, exactly as with CLIP. When the
aligned weights are missing, the job makes them (both towers locked, features cached)
and installs them as a clipood tag; it refuses weights whose alignment saw the held-out
designer (and, in the disjoint regime, a fine-tuning designer). The job itself is a sweep
(``sweep.run_sweep``): three seeds per method, finished runs skipped, so a stopped demo
continues where it stopped; it ends with the held-out designer's table and the HTML
report. ``--arch clipood-emoji-s`` keeps the earlier backbone, a small CLIP trained here
from scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .cache import cache_root
from .data.emoji import DEFAULT_HOLDOUT, DOMAINS, build_emoji
from .errors import ClipoodError, ModelError
from .methods import get_method
from .reporting.stats import fmt_stat
from .reporting.text import markdown_table

__all__ = ["DemoSettings", "METHODS", "PROVENANCE", "REGIMES", "SCRATCH_ARCH", "check_protocol", "demo_spec",
           "ensure_backbone", "heldout_table", "paper_tag", "run_demo", "seen_domains"]

METHODS = {m: get_method(m).label for m in ("zeroshot", "finetune", "clipood")}  # name -> table label
REGIMES = ("paper", "disjoint")  # --regime: what the backbone is aligned on (module docstring)


def paper_tag(holdout: str) -> str:
    """The tag of the alignment on every designer but ``holdout`` (the paper regime)."""
    from .model.weights import PAPER_TAG_PREFIX
    return PAPER_TAG_PREFIX + holdout
SCRATCH_ARCH = "clipood-emoji-s"  # the earlier backbone: CLIP's loss from scratch (docs/pretrained.md)
PROVENANCE = "clipood_pretrain.json"
MAX_SEEDS = 100  # seeds per method: each is a run of every method


@dataclass
class DemoSettings:
    """What the default job runs; one place for its defaults (``clipood demo --help`` shows them).
    docs/benchmark.md says how each value was chosen (training-domain validation, never openmoji)."""

    arch: str = "clipood-lite0-minilm"
    pretrained: Optional[str] = None  # a clipood tag or file; None: the regime's tag (``tag``), made when missing
    classes: int = 150          # a slice of the benchmark's classes (spread over the sorted list)
    holdout: str = DEFAULT_HOLDOUT
    regime: str = "paper"       # REGIMES: what the backbone is aligned on
    anchor_domains: tuple = ("noto", "twemoji")  # aligned on, never fine-tuned or tested on (both regimes)
    steps: int = 60             # chosen by training-domain validation within the 15-minute budget
    seeds: int = 3
    batch_size: int = 12        # per fine-tuning designer: 36 images a step
    lr: float = 1e-4            # chosen by training-domain validation (paper, CLIP ViT-B/16: 5e-6)
    margin_lambda: float = 0.1  # paper's value for domain + open-class shift
    beta: float = 0.5
    trainable: str = "all"      # chosen by training-domain validation over last:2 and last:4
    workers: int = 2            # image decoding beside the 2 compute threads: 13 % faster steps (measured)
    # LiT alignment of the packaged towers, made when the tag is missing
    align_from: str = "towers"
    align_steps: int = 400      # about 100 epochs of the alignment pairs at batch 128
    align_batch: int = 128
    align_lr: float = 1e-3
    align_caption_tags: int = 0  # captions are the emoji names only
    align_val_size: int = 128
    # the from-scratch backbone (--arch clipood-emoji-s)
    pretrain_steps: int = 400
    pretrain_batch: int = 64
    overrides: dict = field(default_factory=dict)

    @property
    def finetune_domains(self) -> list[str]:
        return [d.name for d in DOMAINS if d.name != self.holdout and d.name not in self.anchor_domains]

    @property
    def data_name(self) -> str:
        """The benchmark folder's name: one per designer set, so that a demo holding out another designer
        (``--holdout-domain D --align-only`` for the leave-one-designer-out table) never rebuilds the data that
        earlier runs were trained on."""
        domains = sorted([*self.finetune_domains, self.holdout])
        default = DemoSettings(classes=self.classes)
        same = domains == sorted([*default.finetune_domains, default.holdout])
        return f"emoji-{self.classes}" if same else f"emoji-{self.classes}-{'+'.join(domains)}"

    @property
    def align_domains(self) -> tuple:
        """What the backbone is aligned on: every designer but the held-out one (paper), or the anchors only."""
        if self.regime == "paper":
            return tuple(d.name for d in DOMAINS if d.name != self.holdout)
        return tuple(self.anchor_domains)

    @property
    def tag(self) -> str:
        """The backbone's weights: --pretrained, else the tag of this regime's alignment (made when missing)."""
        if self.pretrained:
            return self.pretrained
        if self.arch == SCRATCH_ARCH:
            return "emoji"
        if self.regime == "paper":
            return paper_tag(self.holdout)
        anchors = tuple(self.anchor_domains)
        return "emoji" if anchors == ("noto", "twemoji") else "emoji-" + "+".join(anchors)

    def check(self) -> None:
        """Every setting checked before any data is built or backbone aligned: the fine-tuning settings by
        the same field ranges as ``clipood train`` (config.fields), the demo's own below."""
        from .config import Config, check_value, iter_fields
        from .errors import ConfigError
        fields = {(sec, f.name): f for sec, _, f in iter_fields(Config)}
        for key, value in ((("train", "steps"), self.steps), (("optim", "lr"), self.lr),
                           (("train", "batch_size"), self.batch_size), (("loss", "margin_lambda"), self.margin_lambda),
                           (("averaging", "beta"), self.beta), (("data", "workers"), self.workers)):
            check_value(fields[key], value)
        for flag, value, lo, hi in (("seeds", self.seeds, 1, MAX_SEEDS), ("classes", self.classes, 2, None)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
                allowed = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
                raise ConfigError(f"--{flag}: {value!r} is out of range; allowed: {allowed}")
        tr = self.trainable
        if not (tr == "all" or (tr.startswith("last:") and tr[5:].isdigit() and int(tr[5:]) >= 1)):
            raise ConfigError(f"--trainable: {tr!r} is out of range; allowed: 'all' or 'last:N' with N >= 1")
        if self.regime not in REGIMES:
            raise ConfigError(f"--regime: {self.regime!r} is out of range; allowed: {', '.join(REGIMES)}")
        names = [d.name for d in DOMAINS]
        for d in (self.holdout, *self.anchor_domains):
            if d not in names:
                raise ClipoodError(f"demo: '{d}' is not an emoji designer; designers: {', '.join(names)}")
        if self.regime == "disjoint" and self.holdout in self.anchor_domains:
            raise ClipoodError(f"demo: the held-out designer '{self.holdout}' cannot be an alignment designer")
        if not self.finetune_domains:
            raise ClipoodError("demo: no designer is left to fine-tune on; align on fewer designers")


def demo_spec(root: Path, out: Path, s: DemoSettings):
    from .sweep import spec_from_dict
    return spec_from_dict({
        "name": "demo", "output_dir": str(out), "methods": list(METHODS),
        "holdout": [s.holdout], "seeds": s.seeds, "base_to_new": True,
        "overrides": {
            "model": {"arch": s.arch, "pretrained": s.tag, "trainable": s.trainable},
            "data": {"workers": s.workers},
            "loss": {"margin_lambda": s.margin_lambda},
            "averaging": {"beta": s.beta},
            "optim": {"lr": s.lr},
            "train": {"steps": s.steps, "batch_size": s.batch_size, "checkpoint_every": 50, "log_every": 10},
            "eval": {"zeroshot": False},  # the 'zeroshot' run evaluates the pre-trained model once
            **s.overrides,
        },
        "datasets": [{"name": "emoji", "root": str(root)}],
    }, "demo")


def heldout_table(out: Path, holdout: str) -> str:
    """Held-out designer, base / new / H / all classes: mean ± std over seeds per method.

    Zero-shot has no randomness: its row is the one evaluation of the pre-trained model (the
    'zeroshot' run), not a mean. The last row is chance (a uniform guess), so that low
    accuracies can be read for what they are."""
    from .data.splits import base_new_classes
    from .evaluation import harmonic_mean
    rows = {m: [] for m in METHODS}
    num_classes = 0
    for results_path in sorted(out.glob("*/results.json")):
        res = json.loads(results_path.read_text(encoding="utf-8"))
        num_classes = res.get("num_classes", num_classes)
        side = results_path.parent / "sweep.json"  # the sweep's record of the method: never guessed from the name
        method = json.loads(side.read_text(encoding="utf-8")).get("method") if side.is_file() else None
        if method in rows:
            rows[method].append(res["zeroshot" if method == "zeroshot" else "final"][f"{holdout}/in"])
    table = [[label] + [fmt_stat([e[k] for e in rows[m]]) for k in ("base", "new", "H", "accuracy")]
             + ["1 (no randomness)" if m == "zeroshot" else len(rows[m])] for m, label in METHODS.items()]
    if num_classes:
        base, new = (100 / len(c) for c in base_new_classes(num_classes))
        table.append(["chance (uniform guess)", f"{base:.1f}", f"{new:.1f}", f"{harmonic_mean(base, new):.1f}",
                      f"{100 / num_classes:.1f}", "-"])
    return markdown_table(
        [f"method ({holdout} held out, accuracy %)", "base classes", "new classes", "H", "all classes", "seeds"], table)


# ------------------------------------------------------------------ the backbone


def seen_domains(provenance: dict) -> set[str]:
    """The designers whose images the weights were trained or aligned on (from clipood_pretrain.json)."""
    return {d for d in provenance.get("data", {}).get("train_pairs_per_domain", {}) if d}


def check_protocol(s: DemoSettings, provenance: Optional[dict], where: str) -> None:
    """The held-out designer is never in what the weights saw (both regimes); in the disjoint regime the
    fine-tuning designers are not either, or the demo stops."""
    if provenance is None:
        return
    seen = seen_domains(provenance)
    if s.holdout in seen:
        raise ClipoodError(f"demo: the weights in {where} were trained on the held-out designer '{s.holdout}'; "
                           f"delete that folder so the demo rebuilds them without it")
    overlap = sorted(seen & set(s.finetune_domains))
    if overlap and s.regime == "disjoint" and s.arch != SCRATCH_ARCH:
        raise ClipoodError(f"demo: the weights in {where} were aligned on {', '.join(overlap)}, which the demo "
                           f"fine-tunes on; delete that folder so the demo aligns on {', '.join(s.align_domains)} only")
    if overlap and s.arch == SCRATCH_ARCH:
        print(f"note: the {SCRATCH_ARCH} weights were pretrained on {', '.join(overlap)}, which the demo also "
              f"fine-tunes on (that backbone's recipe; the disjoint regime keeps them apart)")


def _provenance(arch: str, pretrained: str) -> tuple[Optional[dict], str]:
    from .model.weights import resolve_weights
    w = resolve_weights(arch, pretrained)
    folder = w.folder if w.folder is not None else (Path(w.pretrained).parent if w.pretrained else None)
    path = folder / PROVENANCE if folder is not None else None
    if path is None or not path.is_file():
        return None, str(folder)
    return json.loads(path.read_text(encoding="utf-8")), str(folder)


def _align(s: DemoSettings, classes: list[str], progress: bool) -> None:
    """LiT: the packaged towers locked, their projections and logit scale aligned on the alignment designers'
    pretraining set of the demo's classes (their emoji, as many others, names as captions)."""
    from .pretraining.config import PretrainConfig, validate_pretrain
    from .pretraining.trainer import run_pretrain
    root = cache_root() / "datasets" / f"emoji-{len(classes)}-align-{'+'.join(s.align_domains)}"
    build = build_emoji(root, classes=classes, domains=list(s.align_domains), pretrain=True, progress=progress)
    print(f"no '{s.tag}' weights for {s.arch} yet: aligning its towers (LiT, both locked) on "
          f"{', '.join(s.align_domains)} ({build.pretrain_root}/captions.csv)")
    cfg = PretrainConfig()
    cfg.model.arch, cfg.model.pretrained = s.arch, s.align_from
    cfg.model.lock_image = cfg.model.lock_text = True
    cfg.data.csv = str(Path(build.pretrain_root) / "captions.csv")
    cfg.data.caption_max_tags, cfg.data.val_size, cfg.data.workers = s.align_caption_tags, s.align_val_size, 0
    cfg.optim.lr, cfg.optim.warmup_steps = s.align_lr, min(20, s.align_steps // 10)
    cfg.train.steps, cfg.train.batch_size, cfg.train.eval_every = s.align_steps, s.align_batch, 0
    cfg.run.output_dir, cfg.run.install_as = str(cache_root() / "pretrain-runs"), s.tag
    run, results = run_pretrain(validate_pretrain(cfg), progress=progress)
    v = results.get("validation") or {}
    print(f"installed as --arch {s.arch} --pretrained {s.tag} in {results['train_time_s']:.0f} s; "
          f"held-out alignment pairs: image->text {100 * v.get('i2t_top1', 0):.1f} %, text->image "
          f"{100 * v.get('t2i_top1', 0):.1f} % (run: {run.path})")


def _pretrain_from_scratch(s: DemoSettings, data_root: Path, progress: bool) -> None:
    """The earlier backbone: CLIP's loss from scratch on every designer but the held-out one."""
    from .pretraining.config import PretrainConfig, validate_pretrain
    from .pretraining.trainer import run_pretrain
    build = build_emoji(data_root, max_classes=s.classes, pretrain=True, progress=progress)
    print(f"no '{s.tag}' weights for {s.arch} yet: pretraining them ({s.pretrain_steps} steps on "
          f"{build.pretrain_root}/captions.csv, '{s.holdout}' excluded)")
    cfg = PretrainConfig()
    cfg.model.arch = s.arch
    cfg.data.csv = str(Path(build.pretrain_root) / "captions.csv")
    cfg.data.exclude_domains = [s.holdout]
    cfg.data.workers = 0
    cfg.optim.lr = 1e-3
    cfg.optim.warmup_steps = min(100, s.pretrain_steps // 4)
    cfg.train.steps, cfg.train.batch_size = s.pretrain_steps, s.pretrain_batch
    cfg.run.output_dir, cfg.run.install_as = str(cache_root() / "pretrain-runs"), s.tag
    run, _ = run_pretrain(validate_pretrain(cfg), progress=progress)
    print(f"installed as --arch {s.arch} --pretrained {s.tag} (pretraining run: {run.path})")


def ensure_backbone(s: DemoSettings, classes: list[str], *, progress: bool = True) -> None:
    """Make and install the backbone's weights unless they exist; check what they were trained on."""
    try:
        provenance, where = _provenance(s.arch, s.tag)
    except ModelError:
        if s.arch.startswith(("local-dir:", "hf-hub:")):
            raise
        if s.arch == SCRATCH_ARCH:
            _pretrain_from_scratch(s, cache_root() / "datasets" / f"emoji-{s.classes}-all", progress)
        else:
            _align(s, classes, progress)
        provenance, where = _provenance(s.arch, s.tag)
    check_protocol(s, provenance, where)


OTHER_REGIME = {
    "paper": ("the disjoint regime (--regime disjoint: aligned on noto and twemoji only, which it never fine-tunes "
              "on) shows fine-tuning gaining where the backbone knew little, and CLIPood behind on base classes; its "
              "table: docs/benchmark.md, 'The disjoint regime'"),
    "disjoint": ("the paper regime (the default, --regime paper: aligned on every designer but the held-out one) "
                 "shows plain fine-tuning eroding what the backbone knew; its table: docs/benchmark.md, 'The demo'"),
}


def run_demo(out: Path, settings: Optional[DemoSettings] = None, *, data_dir: Optional[Path] = None,
             progress: bool = True, report: bool = True, align_only: bool = False) -> str:
    """The job; ``align_only`` makes (or checks) the backbone's aligned weights and stops (``--align-only``)."""
    from .sweep import run_sweep
    s = settings or DemoSettings()
    s.check()
    root = Path(data_dir) if data_dir else cache_root() / "datasets" / s.data_name
    build = build_emoji(root, max_classes=s.classes, domains=[*s.finetune_domains, s.holdout], progress=progress)
    print(build.summary())
    ensure_backbone(s, build.classes, progress=progress)
    if align_only:
        print(f"--align-only: --arch {s.arch} --pretrained {s.tag} is ready (aligned on {', '.join(s.align_domains)})")
        return ""
    outcome = run_sweep(demo_spec(root, out, s), progress=progress)
    if outcome.failed:
        first = next(iter(outcome.failed.items()))
        raise ClipoodError(f"demo: {len(outcome.failed)} run(s) failed, e.g. {first[0]}: {first[1]}")
    table = heldout_table(out, s.holdout)
    print(table)
    seen = "pretrained from scratch" if s.arch == SCRATCH_ARCH else f"aligned on {', '.join(s.align_domains)}"
    print(f"\naccuracy on the held-out designer '{s.holdout}' ('in' split), fine-tuned on "
          f"{', '.join(s.finetune_domains)} (base classes only), backbone {s.arch} ({s.tag}, {seen}); "
          f"{s.seeds} seed(s), {s.steps} steps, lr {s.lr}, lambda {s.margin_lambda}, beta {s.beta}; runs in {out}")
    if s.arch != SCRATCH_ARCH:
        print(f"{s.regime} regime; {OTHER_REGIME[s.regime]}")
    if report:
        from .reporting.build import build_report
        rep = build_report(out, make_plots=True)
        print(f"report (tables, plots): {rep.html_path}")
    return table
