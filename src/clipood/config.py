"""One typed configuration tree, the single source of defaults.

Every option of every command is a field below; the CLI flags, the YAML file format,
the saved ``config.yaml`` of a run and the docs table (``docs/configuration.md``) are
all generated from these dataclasses. Each field carries its help text and, where the
default comes from the paper's official implementation, says so ("paper:").
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError


def opt(default: Any, help: str, *, flag: Optional[str] = None, choices: Optional[tuple] = None,
        execution: bool = False):
    """A config field with its help text (and optional CLI flag name and choices).

    ``execution``: the option changes how a run executes, not what it computes, so a run
    may resume with another value (workers, device, logging, where files go)."""
    meta = {"help": help, "execution": execution}
    if flag:
        meta["flag"] = flag
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    arch: str = opt(
        "ViT-B-16",
        "open_clip architecture name (e.g. ViT-B-16), 'local-dir:PATH' (a folder with "
        "open_clip_config.json and weights), 'hf-hub:ORG/REPO' (online only), or a bundled "
        "tiny config such as clipood-tiny (tests).",
    )
    pretrained: Optional[str] = opt(
        "auto",
        "weights for --arch: 'auto' (the folder's own weights for local-dir:, open_clip's 'openai' where it "
        "exists, else the architecture's clipood tag, e.g. 'emoji' for clipood-lite0-minilm), a pretrained tag "
        "(open_clip's, downloaded when online, or clipood's: 'clipood models --tags'), a local checkpoint file "
        "(.pt/.bin/.safetensors), or 'none' for random weights.",
    )
    trainable: str = opt(
        "all",
        "which image-tower parameters train: 'all' (paper) or 'last:N', the last N parameter "
        "groups as open_clip's lock_image_tower counts them (ViT: projection, final norm, then "
        "blocks from the end).",
    )
    templates: list = opt(
        ["a photo of a {}."],
        "prompt templates for the class texts; several give an ensemble (the mean of the "
        "normalised embeddings). Paper: 'a photo of a {}.'",
        flag="template",
    )
    cache_dir: Optional[str] = opt(None, "where open_clip caches downloaded weights.", execution=True)


@dataclass
class DataConfig:
    root: Optional[str] = opt(
        None,
        "dataset root: ROOT/<domain>/<class>/<image> (DomainBed layout) or "
        "ROOT/<class>/<image> (flat ImageFolder layout, one domain). With --dataset: the "
        "folder holding the benchmark datasets (DomainBed's data_dir, CoOp's $DATA).",
    )
    dataset: Optional[str] = opt(
        None,
        "a named benchmark under --root, read with its own layout, class names and splits: "
        "pacs, vlcs, officehome, terraincognita, domainnet, imagenet (with its shift sets), "
        "imagenet-v2, imagenet-sketch, imagenet-a, imagenet-r, caltech101, oxfordpets, "
        "stanfordcars, flowers102, food101, fgvcaircraft, sun397, dtd, eurosat, ucf101 "
        "(docs/datasets.md; 'clipood datasets' lists them). None: scan --root as a folder.",
    )
    layout: str = opt(
        "auto",
        "folder layout of --root: 'domains', 'imagefolder', or 'auto' (domains when every "
        "sub-folder of ROOT holds class folders).",
        choices=("auto", "domains", "imagefolder"),
    )
    class_names: Optional[str] = opt(
        None,
        "file overriding class names: one 'folder_name<TAB>readable name' per line "
        "(or one readable name per line, in sorted folder order).",
    )
    holdout_domains: list = opt(
        [],
        "domains held out of training and tested on (leave-one-domain-out); repeat the flag "
        "for several.",
        flag="holdout-domain",
    )
    base_to_new: bool = opt(
        False,
        "split classes (sorted) in half: train on the first half (base) only, report "
        "accuracy on base, new and their harmonic mean H (CoOp protocol).",
    )
    val_fraction: float = opt(
        0.2,
        "fraction of each domain held out as its 'out' split (DomainBed: 0.2); training "
        "uses the 'in' split of the training domains, their 'out' split is validation.",
    )
    split_seed: int = opt(0, "seed of the in/out split (fixed across runs, as DomainBed's).")
    shots: Optional[int] = opt(
        None, "use at most N training images per class and domain (few-shot; 16 in CoOp)."
    )
    workers: int = opt(2, "data-loading worker processes (0 loads in the main process).", execution=True)
    bad_images: str = opt(
        "fail",
        "unreadable/truncated image policy: 'fail' names the file and stops; 'skip' leaves "
        "it out and lists it in the run directory (bad_images.txt).",
        choices=("fail", "skip"),
        execution=True,
    )


@dataclass
class LossConfig:
    name: str = opt(
        "mms",
        "'mms' Margin Metric Softmax (Eq. 3-4), 'metric_softmax' (cosine logits, plain "
        "cross-entropy), 'linear' (linear head on image features, Eq. 1: the ERM baseline), "
        "'fixed_margin' (MMS with a constant margin lambda for every other class: Fig. 5 "
        "ablation).",
        flag="loss",
        choices=("mms", "metric_softmax", "linear", "fixed_margin"),
    )
    margin_lambda: float = opt(0.3, "lambda, the margin scale of MMS (Eq. 4). Paper: 0.3.", flag="lambda")
    temperature: Optional[float] = opt(
        None,
        "tau, the softmax temperature of the cosine logits; none: 1 / the backbone's own learned logit scale, as "
        "the official code takes it (CLIP: 1/100 = 0.01, the paper's value; clipood-lite0-minilm's 'emoji' "
        "weights: about 0.06). results.json records the value used (method.temperature).",
    )
    head_init: str = opt(
        "zeroshot",
        "linear head initialisation for --loss linear: 'zeroshot' (the class text "
        "embeddings / tau) or 'random'.",
        choices=("zeroshot", "random"),
    )


@dataclass
class AveragingConfig:
    name: str = opt(
        "bma",
        "weight averaging: 'bma' Beta Moving Average (Eq. 5-7), 'ema', 'uniform' "
        "(mean of theta_1..theta_T, Fig. 5) or 'none'. The averaged model is evaluated and saved.",
        flag="averaging",
        choices=("bma", "ema", "uniform", "none"),
    )
    beta: float = opt(0.5, "beta of the Beta(beta, beta) step weights (Eq. 6). Paper: 0.5.")
    ema_decay: float = opt(0.999, "decay of --averaging ema.")
    every: int = opt(
        1,
        "update the average every k steps; the skipped steps' Beta weights go to the step "
        "that updates (exact when k = 1).",
        flag="average-every",
    )


@dataclass
class OptimConfig:
    lr: float = opt(5e-6, "AdamW learning rate. Paper: 5e-6 (1e-5 for OfficeHome and DomainNet).")
    weight_decay: float = opt(0.1, "AdamW weight decay, on every trained parameter. Paper: 0.1.")
    betas: list = opt([0.9, 0.999], "AdamW betas.", flag="adam-betas")
    eps: float = opt(1e-8, "AdamW epsilon.", flag="adam-eps")
    warmup_steps: int = opt(0, "linear warm-up steps before the cosine decay. Paper: 0.")
    min_lr_ratio: float = opt(0.0, "final learning rate of the cosine decay, as a fraction of --lr.")
    grad_clip: Optional[float] = opt(
        1.0,
        "clip the gradient norm to this value ('none' to disable). The paper does not clip; "
        "on by default here as a guard against spikes (at lr 5e-6 it rarely binds).",
    )


@dataclass
class TrainConfig:
    steps: int = opt(5000, "optimisation steps T. Paper: 5000 (DomainNet 10000).")
    batch_size: int = opt(
        12,
        "images per training domain per step: each step draws this many from every training "
        "domain (paper: 12, i.e. 36 for 3 source domains). With one domain it is the batch.",
    )
    seed: int = opt(0, "seed of initialisation-free randomness: data order, augmentation.")
    device: str = opt("auto", "'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'.", execution=True)
    precision: str = opt(
        "auto",
        "'auto' (bf16 autocast on CUDA, fp32 on CPU), 'fp32', 'bf16' or 'fp16' (with a grad "
        "scaler). Master weights and the average stay fp32.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    log_every: int = opt(10, "write train loss and learning rate to metrics.jsonl every N steps.", execution=True)
    eval_every: int = opt(
        0, "evaluate the averaged model on the validation splits every N steps (0: only at the end)."
    )
    checkpoint_every: int = opt(
        500, "write a resumable checkpoint every N steps (and on SIGTERM/SIGINT); 0 disables.", execution=True
    )
    keep_checkpoints: int = opt(2, "keep the last K checkpoints.", execution=True)
    accum_steps: int = opt(
        1,
        "gradient accumulation: split each step's batch into N micro-batches (forward/backward "
        "one at a time, one optimiser step); the update equals the full-batch one, memory is that "
        "of one micro-batch. Steps, schedule and averaging count optimiser steps.",
    )
    grad_checkpointing: bool = opt(
        False,
        "activation checkpointing in the image tower: recompute block activations in the backward "
        "pass (less memory, about 30% more compute; same maths).",
    )
    channels_last: str = opt(
        "auto",
        "channels_last memory format for the image tower and images, in training and evaluation: 'auto' (on for "
        "convolutional towers, e.g. EfficientNet/RN50/ConvNeXt, on CUDA and on CPU, where it made EfficientNet-Lite0 "
        "3x faster; off for ViTs, where it does not help), 'on' or 'off'.",
        choices=("auto", "on", "off"),
    )
    norm_layers: str = opt(
        "frozen",
        "BatchNorm layers of the image tower while fine-tuning: 'frozen' (the official code trains with the tower "
        "in eval mode: running statistics are used and kept, their affine weights still train, and they are not "
        "averaged as weights) or 'train' (statistics from each batch, updated and averaged). No effect on "
        "towers without BatchNorm (ViTs).",
        choices=("frozen", "train"),
    )
    compile: bool = opt(
        False,
        "torch.compile the image tower (first steps are slow while it compiles; helps on GPUs, "
        "not on CPUs).",
    )


@dataclass
class EvalConfig:
    batch_size: int = opt(256, "evaluation batch size.", flag="eval-batch-size", execution=True)
    zeroshot: bool = opt(
        True, "also evaluate the pre-trained (zero-shot) model before training, for comparison."
    )


@dataclass
class RunConfig:
    output_dir: str = opt("runs", "parent folder of run directories.", execution=True)
    name: Optional[str] = opt(
        None, "run directory name (default: [<dataset>-]<method>-<holdout>-seed<seed>-<timestamp>).",
        execution=True,
    )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS = [f.name for f in dataclasses.fields(Config)]


def execution_keys(cls=None) -> set[str]:
    """'section.field' of the options that change how a run executes, not what it computes."""
    return {f"{sec}.{f.name}" for sec, _, f in iter_fields(cls or Config) if f.metadata.get("execution")}


# --------------------------------------------------------------------------- io


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def flag_name(section_field: dataclasses.Field) -> str:
    return section_field.metadata.get("flag", section_field.name.replace("_", "-"))


def iter_fields(cls=Config):
    """Yield (section name, section class, field) for every option."""
    for sec in dataclasses.fields(cls):
        sec_cls = sec.default_factory
        for f in dataclasses.fields(sec_cls):
            yield sec.name, sec_cls, f


def field_type(sec_cls, f: dataclasses.Field):
    """The runtime type of a field: (base type, optional?, is_list)."""
    hints = typing.get_type_hints(sec_cls)
    tp = hints[f.name]
    optional = False
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if tp is list:
        return list, optional, True
    return tp, optional, False


def coerce(value: Any, sec_name: str, sec_cls, f: dataclasses.Field) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError naming the option."""
    tp, optional, is_list = field_type(sec_cls, f)
    where = f"--{flag_name(f)} ({sec_name}.{f.name})"
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required")
    if is_list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = type(f.default_factory()[0]) if f.default_factory()[0:1] else str
        try:
            return [inner(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a list of {inner.__name__}, got {value!r}") from None
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError  # YAML 'steps: 2.5' must not silently become 2
                return int(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(data: dict, base: Optional[Config] = None, source: str = "config") -> Config:
    """Merge a nested dict (as in a YAML file) over ``base``; unknown keys are errors."""
    cfg = base if base is not None else Config()
    sections = [f.name for f in dataclasses.fields(cfg)]  # any config tree (Config, PretrainConfig)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections {sections}, got {type(data).__name__}")
    for sec_name, values in data.items():
        if sec_name not in sections:
            raise ConfigError(f"{source}: unknown section {sec_name!r} (known: {', '.join(sections)})")
        section = getattr(cfg, sec_name)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {sec_name!r} must be a mapping, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown option {sec_name}.{key!r} (known: {', '.join(fields)})"
                )
            setattr(section, key, coerce(value, sec_name, type(section), fields[key]))
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not 'last wins')."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(path: str | Path, flag: str = "--config") -> Any:
    """A YAML file's data, or one ConfigError line: missing, unreadable, invalid, or with a duplicate key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag}: file not found: {path}")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        msg = " ".join(str(e).split()) if str(e) else type(e).__name__
        raise ConfigError(f"{flag}: {path} is not valid YAML: {msg}") from None
    except OSError as e:
        raise ConfigError(f"{flag}: {path}: cannot be read ({e.strerror})") from None


def given_keys(data: Any) -> set[str]:
    """'section.field' for every option a YAML mapping sets (to tell what the user chose from defaults)."""
    if not isinstance(data, dict):
        return set()
    return {f"{sec}.{key}" for sec, values in data.items() if isinstance(values, dict) for key in values}


def load_yaml(path: str | Path, base: Optional[Config] = None) -> Config:
    path = Path(path)
    return from_dict(parse_yaml(path), base, source=str(path))


def save_yaml(cfg, path: str | Path) -> None:
    from .io import write_text
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _absolute(path: Optional[str]) -> Optional[str]:
    return None if path is None else str(Path(path).expanduser().absolute())


def with_absolute_paths(cfg):
    """A copy of a config tree with every path absolute, so a run resumes from any working directory."""
    cfg = copy.deepcopy(cfg)
    m = cfg.model
    if m.arch.startswith("local-dir:"):
        m.arch = "local-dir:" + _absolute(m.arch[len("local-dir:"):])
    if m.pretrained and os.path.isfile(os.path.expanduser(m.pretrained)):
        m.pretrained = _absolute(m.pretrained)
    m.cache_dir = _absolute(m.cache_dir)
    for section, key in (("data", "root"), ("data", "class_names"), ("data", "csv"), ("run", "output_dir")):
        sec = getattr(cfg, section, None)
        if sec is not None and hasattr(sec, key):
            setattr(sec, key, _absolute(getattr(sec, key)))
    return cfg


def check_name(name: Optional[str]) -> None:
    """A run name is one folder inside --output-dir: no separators, no '..'."""
    if name is None:
        return
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"--name: {name!r} is not a folder name inside --output-dir; use letters, digits, "
                          f"'-', '_' or '.', without '/'")


def check_output_dir(output_dir: str) -> None:
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir: {out} is a file, not a folder; choose a folder for the run directories")


def check_templates(templates: list) -> None:
    for t in templates:
        try:
            ok = isinstance(t, str) and t.count("{}") == 1 and t.format("x") == t.replace("{}", "x", 1)
        except (IndexError, KeyError, ValueError):
            ok = False
        _check(ok, "template", t, "a prompt with one '{}' where the class name goes and no other braces, "
                                  "e.g. 'a photo of a {}.'")


MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer


# --------------------------------------------------------------------- validation


def _check(ok: bool, option: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"--{option}: {value!r} is out of range; allowed: {allowed}")


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def validate(cfg: Config, *, training: bool = True) -> Config:
    """Check every value before any work starts; raise ConfigError naming the option."""
    m, d, lo, av, o, t, e = cfg.model, cfg.data, cfg.loss, cfg.averaging, cfg.optim, cfg.train, cfg.eval
    _check(bool(m.arch), "arch", m.arch, "an open_clip architecture name or local-dir:PATH")
    tr = m.trainable
    ok = tr == "all" or (tr.startswith("last:") and tr[5:].isdigit() and int(tr[5:]) >= 1)
    _check(ok, "trainable", tr, "'all' or 'last:N' with N >= 1")
    _check(len(m.templates) > 0, "template", m.templates, "one or more templates, e.g. 'a photo of a {}.'")
    check_templates(m.templates)
    _check(d.layout in ("auto", "domains", "imagefolder"), "layout", d.layout, "auto, domains, imagefolder")
    _check(_finite(d.val_fraction) and 0.0 <= d.val_fraction < 1.0, "val-fraction", d.val_fraction, "0 <= x < 1")
    _check(d.shots is None or d.shots >= 1, "shots", d.shots, "an integer >= 1 or none")
    _check(d.workers >= 0, "workers", d.workers, "an integer >= 0")
    _check(d.bad_images in ("fail", "skip"), "bad-images", d.bad_images, "fail, skip")
    _check(lo.name in ("mms", "metric_softmax", "linear", "fixed_margin"), "loss", lo.name,
           "mms, metric_softmax, linear, fixed_margin")
    _check(_finite(lo.margin_lambda) and 0.0 <= lo.margin_lambda <= 10.0, "lambda", lo.margin_lambda,
           "0 <= lambda <= 10 (paper: 0.1-0.3; 0 gives plain metric softmax)")
    _check(lo.temperature is None or (_finite(lo.temperature) and 1e-4 <= lo.temperature <= 10.0), "temperature",
           lo.temperature, "1e-4 <= tau <= 10 (paper: 0.01), or none for the backbone's own")
    _check(lo.head_init in ("zeroshot", "random"), "head-init", lo.head_init, "zeroshot, random")
    _check(av.name in ("bma", "ema", "uniform", "none"), "averaging", av.name, "bma, ema, uniform, none")
    _check(_finite(av.beta) and 0.0 < av.beta <= 100.0, "beta", av.beta, "0 < beta <= 100 (paper: 0.5)")
    _check(_finite(av.ema_decay) and 0.0 < av.ema_decay < 1.0, "ema-decay", av.ema_decay, "0 < decay < 1")
    _check(av.every >= 1, "average-every", av.every, "an integer >= 1")
    _check(_finite(o.lr) and 0.0 < o.lr <= 1.0, "lr", o.lr, "0 < lr <= 1")
    _check(_finite(o.weight_decay) and 0.0 <= o.weight_decay <= 10.0, "weight-decay", o.weight_decay, "0 <= wd <= 10")
    _check(len(o.betas) == 2 and all(_finite(b) and 0.0 <= b < 1.0 for b in o.betas), "adam-betas", o.betas,
           "two numbers in [0, 1)")
    _check(_finite(o.eps) and o.eps > 0, "adam-eps", o.eps, "eps > 0")
    _check(o.warmup_steps >= 0, "warmup-steps", o.warmup_steps, "an integer >= 0")
    _check(_finite(o.min_lr_ratio) and 0.0 <= o.min_lr_ratio <= 1.0, "min-lr-ratio", o.min_lr_ratio, "0 <= x <= 1")
    _check(o.grad_clip is None or (_finite(o.grad_clip) and o.grad_clip > 0), "grad-clip", o.grad_clip,
           "a positive number or none")
    if training:
        _check(1 <= t.steps <= 10_000_000, "steps", t.steps, "1 <= steps <= 10,000,000")
        _check(o.warmup_steps < t.steps, "warmup-steps", o.warmup_steps, f"fewer than --steps ({t.steps})")
    _check(1 <= t.batch_size <= 65536, "batch-size", t.batch_size, "1 <= batch size <= 65536")
    _check(0 <= t.seed <= MAX_SEED, "seed", t.seed, f"0 <= seed <= {MAX_SEED}")
    _check(0 <= d.split_seed <= MAX_SEED, "split-seed", d.split_seed, f"0 <= seed <= {MAX_SEED}")
    check_name(cfg.run.name)
    check_output_dir(cfg.run.output_dir)
    _check(t.precision in ("auto", "fp32", "bf16", "fp16"), "precision", t.precision, "auto, fp32, bf16, fp16")
    dev = t.device
    ok = dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
    _check(ok, "device", dev, "auto, cpu, cuda, cuda:N")
    _check(t.log_every >= 1, "log-every", t.log_every, "an integer >= 1")
    _check(t.eval_every >= 0, "eval-every", t.eval_every, "an integer >= 0")
    _check(t.checkpoint_every >= 0, "checkpoint-every", t.checkpoint_every, "an integer >= 0")
    _check(t.keep_checkpoints >= 1, "keep-checkpoints", t.keep_checkpoints, "an integer >= 1")
    _check(1 <= t.accum_steps <= 4096, "accum-steps", t.accum_steps, "an integer from 1 to 4096")
    _check(t.channels_last in ("auto", "on", "off"), "channels-last", t.channels_last, "auto, on, off")
    _check(t.norm_layers in ("frozen", "train"), "norm-layers", t.norm_layers, "frozen, train")
    _check(e.batch_size >= 1, "eval-batch-size", e.batch_size, "an integer >= 1")
    if d.root is None:
        raise ConfigError("--root: no dataset given; pass --root PATH (see 'clipood data --help' for a bundled one)")
    if not Path(d.root).is_dir():
        raise ConfigError(f"--root: folder not found: {d.root}")
    if d.class_names is not None and not Path(d.class_names).is_file():
        raise ConfigError(f"--class-names: file not found: {d.class_names}")
    return cfg


def options_markdown(cls=Config, header: Optional[list[str]] = None) -> str:
    """docs/configuration.md: every option, its flag, default and help (regenerate, never edit)."""
    lines = header or ["# Configuration reference", "",
                       "Generated from `src/clipood/config.py` by `python -m clipood.config > docs/configuration.md`; "
                       "a test keeps it in sync. YAML files use the section and key names; the CLI uses the flags. "
                       "Defaults marked 'Paper:' come from the official CLIPood implementation.", ""]
    current = None
    for sec, sec_cls, f in iter_fields(cls):
        if sec != current:
            lines += ["", f"## `{sec}`", "", "| YAML key | flag | default | meaning |", "|---|---|---|---|"]
            current = sec
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = f.metadata["help"].replace("|", "\\|")
        lines.append(f"| `{sec}.{f.name}` | `--{flag_name(f)}` | `{default!r}` | {text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(options_markdown(), end="")
