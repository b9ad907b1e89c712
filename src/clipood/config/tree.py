"""The fine-tuning configuration tree, the single source of defaults (``clipood train|zeroshot|eval``).

Every option of every command is a field below; the CLI flags, the YAML file format, the
saved ``config.yaml`` of a run and the docs table (``docs/configuration.md``) are all
generated from these dataclasses. Each field carries its help text and, where the default
comes from the paper's official implementation, says so ("paper:"); its metadata holds
its choices, range and where it applies (``fields.opt``). The ``loss`` and ``averaging``
sections are made from their registries (``registry_section``): each entry's parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from ..averaging import AVERAGERS
from ..losses import LOSSES
from ..registry import Range, Registry
from ..tuning import TUNINGS
from .fields import opt
from .sections import ALL_COMMANDS, MAX_SEED, DeviceConfig, LoopConfig, OptimConfig, RunConfig

__all__ = ["AveragingConfig", "ComputeConfig", "Config", "DataConfig", "EvalConfig", "LossConfig", "ModelConfig",
           "SECTIONS", "SECTION_SCOPE", "TrainConfig", "TuningConfig"]


@dataclass
class ModelConfig:
    arch: str = opt(
        "ViT-B-16",
        "open_clip architecture name (e.g. ViT-B-16), 'local-dir:PATH' (a folder with "
        "open_clip_config.json and weights), 'hf-hub:ORG/REPO' (online only), or a bundled "
        "tiny config such as clipood-tiny (tests). eval and wise-ft take any CLIP this way (eval: instead of "
        "--model; wise-ft: as its model A).",
        scope=ALL_COMMANDS,
    )
    pretrained: Optional[str] = opt(
        "auto",
        "weights for --arch: 'auto' (the folder's own weights for local-dir:, open_clip's 'openai' where it "
        "exists, else the architecture's clipood tag, e.g. 'emoji' for clipood-lite0-minilm), a pretrained tag "
        "(open_clip's, downloaded when online, or clipood's: 'clipood models --tags'), a local checkpoint file "
        "(.pt/.bin/.safetensors) or model folder of --arch's architecture (another one is an error), or 'none' "
        "for random weights.",
        scope=ALL_COMMANDS,
    )
    trainable: str = opt(
        "all",
        "which image-tower parameters train: 'all' (paper) or 'last:N', the last N parameter "
        "groups as open_clip's lock_image_tower counts them (ViT: projection, final norm, then "
        "blocks from the end).",
        applies={"tuning.name": tuple(n for n, e in TUNINGS.items() if e.uses_trainable)},
        scope=("train",),
    )
    templates: list = opt(
        ["auto"],
        "prompt templates for the class texts, repeatable: 'auto' (the paper's prompt for the data: a named "
        "dataset's own, e.g. CoOp's 'a centered satellite photo of {}.' for EuroSAT, docs/datasets.md; 'a photo "
        "of a {}.' for DomainBed's datasets, ImageNet and a folder), a template with '{}' for the class name, a "
        "preset of open_clip's lists ('openai-imagenet': CLIP's 80 ImageNet templates; 'simple': 7 of them), or "
        "a text file with one template per line. Several give an ensemble (the renormalised mean of the "
        "normalised embeddings).",
        flag="template",
        scope=ALL_COMMANDS,
    )
    activation: str = opt(
        "auto",
        "activation of open_clip's own towers (ViT, ResNet, text transformer): 'auto' (what the weights were "
        "trained with: QuickGELU for OpenAI's CLIP, as the official code's clip.load builds it; a folder's "
        "open_clip_config.json; else the architecture config's), 'gelu' or 'quick_gelu'. A choice the weights "
        "were not trained with is built as asked, with a warning. results.json records the one built "
        "(backbone.activation).",
        choices=("auto", "gelu", "quick_gelu"),
        scope=ALL_COMMANDS,
    )
    interpolation: str = opt(
        "auto",
        "resize interpolation of the training and evaluation transforms: 'auto' (the model's own: bicubic for "
        "CLIP), 'bicubic' or 'bilinear' (the official code's torchvision defaults: --profile official). The "
        "exported model keeps it.",
        choices=("auto", "bicubic", "bilinear"),
        scope=ALL_COMMANDS,
    )
    head_init: str = opt(
        "zeroshot",
        "initialisation of the linear head a loss such as --loss linear trains: 'zeroshot' (the class text "
        "embeddings / tau) or 'random'.",
        choices=("zeroshot", "random"),
        applies={"loss.name": tuple(n for n, e in LOSSES.items() if e.head == "linear")},
        scope=("train",))
    cache_dir: Optional[str] = opt(None, "where open_clip caches downloaded weights.", runtime=True,
                                   scope=ALL_COMMANDS)


@dataclass
class DataConfig:
    root: Optional[str] = opt(
        None,
        "dataset root: ROOT/<domain>/<class>/<image> (DomainBed layout) or "
        "ROOT/<class>/<image> (flat ImageFolder layout, one domain). With --dataset: the "
        "folder holding the benchmark datasets (DomainBed's data_dir, CoOp's $DATA).", scope=ALL_COMMANDS)
    dataset: Optional[str] = opt(
        None,
        "a named benchmark under --root, read with its own layout, class names and splits: "
        "pacs, vlcs, officehome, terraincognita, domainnet, imagenet (with its shift sets), "
        "imagenet-v2, imagenet-sketch, imagenet-a, imagenet-r, caltech101, oxfordpets, "
        "stanfordcars, flowers102, food101, fgvcaircraft, sun397, dtd, eurosat, ucf101 "
        "(docs/datasets.md; 'clipood datasets' lists them). None: scan --root as a folder.", scope=ALL_COMMANDS)
    layout: str = opt(
        "auto",
        "how a folder given as --root (no --dataset) holds its images: 'auto' (the layout it has) or a folder "
        "layout docs/datasets.md#folders lists.",
        scope=ALL_COMMANDS,
    )
    class_names: Optional[str] = opt(
        None,
        "file overriding class names: one 'folder_name<TAB>readable name' per line "
        "(or one readable name per line, in sorted folder order).", scope=ALL_COMMANDS)
    holdout_domains: list = opt(
        [],
        "domains held out of training and tested on (leave-one-domain-out); repeat the flag "
        "for several.",
        flag="holdout-domain", scope=ALL_COMMANDS)
    base_to_new: bool = opt(
        False,
        "split classes (sorted) in half: train on the first half (base) only, report "
        "accuracy on base, new and their harmonic mean H (CoOp protocol).", scope=ALL_COMMANDS)
    protocol: str = opt(
        "clipood",
        "how domain-split data (DomainBed's datasets, a folder) is split and scored. 'clipood': each domain "
        "split per class into in/out (--val-fraction, --split-seed), the held-out domain reported on its 'in' "
        "part (DomainBed's number); with --base-to-new the first ceil(C/2) classes are base and base and new "
        "images are each scored among their own half (CoOp). 'official': as the official code "
        "(converter_domainbed.py): DomainBed's own split (misc.split_dataset, seed_hash(--split-seed, domain)); "
        "leave-one-domain-out tests on the held-out domain's 'out' part; with --base-to-new the first "
        "floor(C/2) classes are base (OfficeHome 32, DomainNet 172), each domain's base and new images are "
        "split apart, training domains validate on their base 'out' part, and the WHOLE held-out domain is "
        "tested, base and new images each scored among ALL classes (paper Table 4). The report compares a "
        "DomainBed cell with the paper only under 'official'. Datasets with their own splits (CoOp's, "
        "ImageNet) are read the same way under both.",
        choices=("clipood", "official"), scope=ALL_COMMANDS)
    val_fraction: float = opt(
        0.2,
        "fraction of each domain held out as its 'out' split (DomainBed: 0.2); training "
        "uses the 'in' split of the training domains, their 'out' split is validation.",
        within=Range(0, 1, hi_open=True), scope=ALL_COMMANDS)
    split_seed: int = opt(0, "seed of the in/out split (fixed across runs, as DomainBed's).",
                          within=Range(0, MAX_SEED, name="seed"), scope=ALL_COMMANDS)
    shots: Optional[int] = opt(
        None, "use at most N training images per class and domain (few-shot; 16 in CoOp).", within=Range(1, name="N"),
        scope=("train", "zeroshot"))
    shot_seed: Optional[int] = opt(
        None, "seed of the few-shot subset (--shots): none draws a new subset for each --seed (CoOp's 3-seed "
        "protocol); 0 keeps one subset for every seed, as the official code does (Dassl's seed 0).",
        within=Range(0, MAX_SEED, name="seed"), scope=("train", "zeroshot"))
    workers: int = opt(2, "data-loading worker processes (0 loads in the main process).", runtime=True,
                       within=Range(0), scope=ALL_COMMANDS)
    bad_images: str = opt(
        "fail",
        "unreadable/truncated image policy: 'fail' names the file and stops; 'skip' leaves "
        "it out and lists it in the run directory (bad_images.txt).",
        choices=("fail", "skip"),
        runtime=True, scope=ALL_COMMANDS)


def registry_section(cls_name: str, registry: Registry, name: dataclasses.Field, common: tuple = ()) -> type:
    """The config section of a registry: ``name`` (which entry), then the entries' parameters that make variants,
    the ``common`` fields ((name, type, field) every entry reads), then the other parameters; each parameter an
    option that applies with the entries that declare it (``Registry.users``)."""
    params = sorted(registry.params(), key=lambda p: not p.variant)
    split = sum(p.variant for p in params)

    def field_of(p) -> tuple:
        users = registry.users(p.name)
        applies = {f"{registry.section}.name": users} if len(users) < len(registry) else None
        tp = type(p.default) if p.default is not None else Optional[float]
        return p.name, tp, opt(p.default, p.help, flag=p.flag, within=p.within, choices=p.choices,
                               variant=p.variant, applies=applies)

    fields = [("name", str, name), *map(field_of, params[:split]), *common, *map(field_of, params[split:])]
    cls = dataclasses.make_dataclass(cls_name, fields)
    cls.__module__ = __name__  # pickled and printed as clipood.config.tree.<cls_name>, as the other sections
    return cls


LossConfig = registry_section("LossConfig", LOSSES, opt(
    "mms", f"the training objective: {LOSSES.help()}.", flag="loss", choices=tuple(LOSSES)), common=(
    ("temperature", Optional[float], opt(
        None,
        "tau, the softmax temperature of the cosine logits; none: 1 / the backbone's own learned logit scale, as "
        "the official code takes it (CLIP: 1/100 = 0.01, the paper's value; clipood-lite0-minilm's 'emoji' "
        "weights: about 0.06). results.json records the value used (method.temperature).",
        within=Range(1e-4, 10, name="tau", note="paper: 0.01"))),))

AveragingConfig = registry_section("AveragingConfig", AVERAGERS, opt(
    "bma", f"weight averaging: {AVERAGERS.help()}. The averaged model is evaluated and saved.", flag="averaging",
    choices=tuple(AVERAGERS)))

TuningConfig = registry_section("TuningConfig", TUNINGS, opt(
    "image", f"what trains: {TUNINGS.help()}.", flag="tuning", choices=tuple(TUNINGS)))


@dataclass
class TrainConfig(LoopConfig):
    accum_steps: int = opt(
        1,
        "gradient accumulation: split each step's batch into N micro-batches (forward/backward "
        "one at a time, one optimiser step); the update equals the full-batch one, memory is that "
        "of one micro-batch. Steps, schedule and averaging count optimiser steps.", within=Range(1, 4096))
    grad_checkpointing: bool = opt(
        False,
        "activation checkpointing in the image tower: recompute block activations in the backward "
        "pass (less memory, about 30% more compute; same maths).",
    )
    norm_layers: str = opt(
        "frozen",
        "BatchNorm layers of the image tower while fine-tuning: 'frozen' (the official code trains with the tower "
        "in eval mode: running statistics are used and kept, their affine weights still train, and they are not "
        "averaged as weights) or 'train' (statistics from each batch, updated and averaged). No effect on "
        "towers without BatchNorm (ViTs).",
        choices=("frozen", "train"),
    )
    sampling: str = opt(
        "epochs",
        "how each training domain's images are drawn: 'epochs' (seeded permutations, every image once per "
        "pass) or 'replacement' (uniformly with replacement each step, as DomainBed's InfiniteDataLoader that "
        "the official code uses for domain-split data; --profile official).",
        choices=("epochs", "replacement"),
    )
    master_weights: str = opt(
        "fp32",
        "how trained weights are kept between steps: 'fp32' or 'fp16' (the official code's: after every AdamW "
        "step, computed in fp32, the image tower's Linear/Conv weights and biases, attention in-projections "
        "and CLIP's projection are rounded to fp16, as clip.model.convert_weights does; the optimizer state "
        "stays fp32; --profile official). At lr 5e-6 fp16 storage rounds most of each update away "
        "(docs/method.md).",
        choices=("fp32", "fp16"),
    )
    compile: bool = opt(
        False,
        "torch.compile the image tower (first steps are slow while it compiles; helps on GPUs, "
        "not on CPUs).",
    )


@dataclass
class ComputeConfig(DeviceConfig):
    channels_last: str = opt(
        "auto",
        "channels_last memory format for the image tower and images, in training and evaluation: 'auto' (on for "
        "convolutional towers, e.g. EfficientNet/RN50/ConvNeXt, on CUDA and on CPU, where it made EfficientNet-Lite0 "
        "3x faster; off for ViTs, where it does not help), 'on' or 'off'.",
        choices=("auto", "on", "off"), scope=ALL_COMMANDS,
    )


@dataclass
class EvalConfig:
    batch_size: int = opt(256, "evaluation batch size.", flag="eval-batch-size", runtime=True, within=Range(1),
                          scope=ALL_COMMANDS)
    zeroshot: bool = opt(
        True, "also evaluate the pre-trained (zero-shot) model before training, for comparison."
    )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS = [f.name for f in dataclasses.fields(Config)]
# Commands that take a section's options when a field does not say (``scope`` in its metadata).
SECTION_SCOPE = {"model": ("train", "zeroshot"), "data": ALL_COMMANDS, "tuning": ("train",), "loss": ("train",),
                 "averaging": ("train",),
                 "optim": ("train",), "train": ("train",), "compute": ALL_COMMANDS, "eval": ("train",),
                 "run": ("train", "zeroshot")}
