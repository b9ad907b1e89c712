"""Options of ``clipood pretrain``: their own typed tree, defaults from open_clip's training.

A separate tree from ``clipood.config.Config`` because almost every default differs
(contrastive pretraining from scratch, not CLIPood fine-tuning: lr 5e-4 not 5e-6, weight
decay 0.2 on matrices only, Adam beta2 0.98), yet built with the same ``opt`` fields, so
flags, ``--help``, YAML files, the saved ``config.yaml`` and the docs table
(``python -m clipood.pretraining.config > docs/pretrain-configuration.md``) all come from
here. Defaults marked "open_clip:" are those of open_clip's ``training/params.py`` for ViTs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..config import (
    DeviceConfig,
    LoopConfig,
    OptimConfig,
    Range,
    RunConfig,
    again,
    check_device,
    check_fields,
    check_run,
    expand_home,
    opt,
    options_markdown,
)
from ..config.validation import _check
from ..errors import ConfigError

__all__ = ["PretrainComputeConfig", "PretrainConfig", "PretrainDataConfig", "PretrainModelConfig",
           "PretrainOptimConfig", "PretrainRunConfig", "PretrainTrainConfig", "options_doc", "separator",
           "validate_pretrain"]


@dataclass
class PretrainModelConfig:
    arch: str = opt(
        "clipood-emoji-s",
        "open_clip architecture to pretrain: a bundled config (clipood-emoji-s: a small ViT on 64 px "
        "images and a small text transformer; clipood-tiny), any open_clip name, or local-dir:PATH to "
        "continue from an exported folder.",
    )
    pretrained: Optional[str] = opt(
        None,
        "initial weights: 'none' (random initialisation, as CLIP), a checkpoint file, or a pretrained "
        "tag of --arch.",
    )
    cache_dir: Optional[str] = opt(None, "where open_clip caches downloaded weights (for a tag).", runtime=True)
    lock_image: bool = opt(
        False,
        "LiT (Zhai et al., 2022; open_clip's --lock-image): freeze the image tower's trunk, which then runs as at "
        "inference (its BatchNorm statistics unchanged); its projection still trains.",
    )
    lock_image_unlocked_groups: int = opt(
        0, "with --lock-image: leave the last N layer groups of the image trunk trainable (open_clip's option).",
        within=Range(0))
    lock_text: bool = opt(
        False,
        "LiT: freeze the text tower's transformer (open_clip's --lock-text); a projection after it still trains.",
    )
    image_projection: str = opt(
        "auto",
        "the image projection of a timm image tower, when aligning from --pretrained towers or none: 'linear', "
        "'linear-bias', 'none' (the trunk's pooled features as they are; the text side then needs a linear "
        "projection to their width), or 'auto' (the architecture's: linear-bias for clipood-liteN-minilm).",
        choices=("auto", "linear", "linear-bias", "none"),
    )
    text_projection: str = opt(
        "auto",
        "the projection after a Hugging Face text tower: 'none' (its pooled output as is), 'linear', or 'auto' "
        "(the architecture's: none for clipood-liteN-minilm).",
        choices=("auto", "none", "linear"),
    )


@dataclass
class PretrainDataConfig:
    csv: Optional[str] = opt(
        None,
        "image-caption table: one row per pair; image paths relative to the table's folder "
        "(or absolute). 'clipood data build emoji' writes one (captions.csv).",
    )
    csv_img_key: str = opt("filepath", "column of image paths. open_clip: filepath.")
    csv_caption_key: str = opt("title", "column of captions. open_clip: title.")
    csv_domain_key: str = opt(
        "domain", "column naming each row's domain (optional; needed for --exclude-domain)."
    )
    csv_separator: str = opt(
        "auto",
        "column separator: 'auto' (tab for .tsv files, comma otherwise), or the character itself "
        "(open_clip's default is a tab).",
    )
    exclude_domains: list = opt(
        [],
        "leave out every row of this domain (repeat for several): the benchmark's held-out domain "
        "must never be seen in pretraining, or its zero-shot and OOD numbers are not honest.",
        flag="exclude-domain",
    )
    val_size: int = opt(
        256,
        "pairs held out of training (chosen by a hash of the image path) to report the contrastive "
        "loss and image-to-text / text-to-image top-1 retrieval accuracy; 0 disables.", within=Range(0))
    crop_min_scale: float = opt(
        0.6, "training augmentation: RandomResizedCrop's smallest area fraction (1 disables cropping).",
        within=Range(0.05, 1))
    rotation: float = opt(
        10.0, "training augmentation: largest random rotation in degrees (icons stay upright enough).",
        within=Range(0, 180, name="degrees"))
    color_jitter: float = opt(
        0.2,
        "training augmentation: brightness/contrast/saturation jitter strength. No hue jitter and no "
        "flips: captions name colours and directions ('red heart', 'left arrow').", within=Range(0, 1))
    zoom_out: float = opt(
        0.0,
        "training augmentation: probability of shrinking an image's drawing to 50-90 % of its size "
        "inside a white frame, so small drawings with wide margins (OpenMoji's) look familiar. 0 disables.",
        within=Range(0, 1, name="p"))
    grayscale: float = opt(
        0.0,
        "training augmentation: probability of turning an image grey, so shape carries more than "
        "colour (captions that name colours lose their cue on those images). 0 disables.",
        within=Range(0, 1, name="p"))
    caption_tag_dropout: float = opt(
        0.0,
        "for captions written as 'name, tag, tag, ...' (the emoji set's): drop each comma-separated "
        "part after the first with this probability, drawn anew every step, so the text tower also "
        "learns the bare names that zero-shot prompts use. 0 keeps captions as written (open_clip).",
        within=Range(0, 1, name="p"))
    caption_max_tags: Optional[int] = opt(
        None,
        "for captions written as 'name, tag, tag, ...': keep at most N comma-separated parts after the first "
        "(0: the name only, as zero-shot prompts name a class). none keeps captions as written.",
        within=Range(0, name="N"))
    workers: int = opt(2, "data-loading worker processes (0 loads in the main process).", runtime=True, within=Range(0))
    bad_images: str = opt(
        "fail",
        "unreadable image policy: 'fail' names the file and stops; 'skip' leaves it out and lists it "
        "in the run directory (bad_images.txt).",
        choices=("fail", "skip"),
        runtime=True,
    )


@dataclass
class PretrainOptimConfig(OptimConfig):
    lr: float = again(OptimConfig, "lr", 5e-4, "AdamW peak learning rate. open_clip: 5e-4.", variant=False)
    weight_decay: float = again(
        OptimConfig, "weight_decay", 0.2,
        "AdamW weight decay on weight matrices; gains, biases, embeddings' 1-D parameters and the "
        "logit scale get none (open_clip's exclusion). open_clip: 0.2.",
    )
    betas: list = again(OptimConfig, "betas", [0.9, 0.98], "AdamW betas. open_clip (ViT): 0.9 0.98.")
    eps: float = again(OptimConfig, "eps", 1e-6, "AdamW epsilon. open_clip (ViT): 1e-6.")
    warmup_steps: int = again(
        OptimConfig, "warmup_steps", 100,
        "linear warm-up steps before the cosine decay (open_clip: 10000, for far longer runs).",
    )
    grad_clip: Optional[float] = again(
        OptimConfig, "grad_clip", None, "clip the gradient norm to this value ('none': no clipping, as open_clip's "
        "default).",
    )


@dataclass
class PretrainTrainConfig(LoopConfig):
    steps: int = again(LoopConfig, "steps", 2000, "optimisation steps.", variant=False)
    batch_size: int = again(
        LoopConfig, "batch_size", 128,
        "image-caption pairs per step; every other pair of the batch is a negative in CLIP's loss.",
        within=Range(2, 65536, note="the contrastive loss needs negatives"),
    )
    seed: int = again(LoopConfig, "seed", 0, "seed of the initialisation, the data order and the augmentation.")
    log_every: int = again(LoopConfig, "log_every", 10,
                           "write train loss, logit scale and learning rate to metrics.jsonl every N steps.")
    eval_every: int = again(
        LoopConfig, "eval_every", 250,
        "report the held-out pairs' loss and retrieval accuracy every N steps (0: only at the end).",
    )
    checkpoint_every: int = again(LoopConfig, "checkpoint_every", 100,
                                  "write a resumable checkpoint every N steps (and on SIGTERM/SIGINT); 0 disables.")
    feature_cache: str = opt(
        "auto",
        "with both towers fully locked (--lock-image --lock-text): 'auto' encodes every image (eval "
        "preprocessing, so no augmentation) and caption once, caches the features in $CLIPOOD_CACHE/features, and "
        "trains the projections on them; 'off' runs the towers every step (with augmentation).",
        choices=("auto", "off"),
    )


@dataclass
class PretrainRunConfig(RunConfig):
    name: Optional[str] = again(RunConfig, "name", None,
                                "run directory name (default: pretrain-<arch>-seed<seed>-<timestamp>).")
    install_as: Optional[str] = opt(
        None,
        "when done, also install the weights as clipood pretrained tag TAG of --arch in "
        "$CLIPOOD_CACHE/pretrained/<arch>/TAG/, so '--arch ARCH --pretrained TAG' loads them "
        "(e.g. 'emoji' for clipood-emoji-s).",
    )


@dataclass
class PretrainComputeConfig(DeviceConfig):
    precision: str = again(
        DeviceConfig, "precision", "auto",
        "'auto' (bf16 autocast on CUDA, fp32 on CPU), 'fp32', 'bf16' or 'fp16' (with a grad scaler). "
        "Master weights stay fp32.",
    )


@dataclass
class PretrainConfig:
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    optim: PretrainOptimConfig = field(default_factory=PretrainOptimConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
    compute: PretrainComputeConfig = field(default_factory=PretrainComputeConfig)
    run: PretrainRunConfig = field(default_factory=PretrainRunConfig)

    def unused_options(self) -> dict[str, str]:
        """Options ('section.field') this pretraining does not use beyond those their fields' ``applies`` say,
        with the reason (``config.irrelevant_keys`` adds them)."""
        m = self.model
        keys = {}
        if m.lock_image and not m.lock_image_unlocked_groups and m.lock_text and self.train.feature_cache == "auto":
            why = "both towers are locked: features of the eval preprocessing are cached, without augmentation"
            for key in ("crop_min_scale", "rotation", "color_jitter", "zoom_out", "grayscale"):
                keys[f"data.{key}"] = f"({why})"
        return keys




def validate_pretrain(cfg: PretrainConfig) -> PretrainConfig:
    """Check every value before any work starts; raise ConfigError naming the option ('~' in paths
    expanded in place, as for fine-tuning)."""
    expand_home(cfg)
    check_fields(cfg)
    m, d, o, t, r = cfg.model, cfg.data, cfg.optim, cfg.train, cfg.run
    _check(bool(m.arch), "arch", m.arch, "an open_clip architecture name or local-dir:PATH")
    for key in ("csv_img_key", "csv_caption_key", "csv_domain_key"):
        _check(bool(getattr(d, key)), key.replace("_", "-"), getattr(d, key), "a column name")
    _check(d.csv_separator == "auto" or len(d.csv_separator.replace("\\t", "\t")) == 1, "csv-separator",
           d.csv_separator, "'auto' or one character (\\t for tab)")
    if m.lock_image_unlocked_groups and not m.lock_image:
        raise ConfigError("--lock-image-unlocked-groups: applies only with --lock-image (the whole image tower "
                          "trains without it); add --lock-image or drop the option")
    _check(o.warmup_steps < t.steps, "warmup-steps", o.warmup_steps, f"fewer than --steps ({t.steps})")
    check_device(cfg.compute.device)
    check_run(r)
    if r.install_as is not None:
        ok = bool(r.install_as) and r.install_as.replace("-", "").replace("_", "").replace(".", "").isalnum()
        _check(ok, "install-as", r.install_as, "a tag made of letters, digits, '-', '_' or '.'")
        if m.arch.startswith(("local-dir:", "hf-hub:")):
            raise ConfigError(f"--install-as: tags belong to an architecture name, not to {m.arch}; "
                              f"pass --arch NAME (e.g. clipood-emoji-s)")
    if d.csv is None:
        raise ConfigError("--csv: no image-caption table given; pass --csv PATH "
                          "(e.g. the captions.csv that 'clipood data build emoji' writes)")
    if not Path(d.csv).is_file():
        raise ConfigError(f"--csv: file not found: {d.csv}")
    return cfg


def separator(cfg: PretrainDataConfig) -> str:
    if cfg.csv_separator == "auto":
        return "\t" if str(cfg.csv).lower().endswith(".tsv") else ","
    return cfg.csv_separator.replace("\\t", "\t")


def options_doc() -> str:
    header = ["# `clipood pretrain` options", "",
              "Generated from `src/clipood/pretraining/config.py` by "
              "`python -m clipood.pretraining.config > docs/pretrain-configuration.md`; a test keeps it in "
              "sync. YAML files (`--config`) use the section and key names; the CLI uses the flags. Defaults "
              "marked 'open_clip:' are those of open_clip's training script for ViTs. See "
              "[pretrained.md](pretrained.md) for what to pretrain on.", ""]
    return options_markdown(PretrainConfig, header)


if __name__ == "__main__":
    print(options_doc(), end="")
