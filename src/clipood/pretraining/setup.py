"""What one pretraining run works with, built from its config: the caption table, the backbone (with its
LiT locks and projection choices), the tokens, the optimiser, schedule and transforms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from open_clip.loss import ClipLoss

from ..errors import ConfigError
from ..io import sha256_file
from ..model.backbones import Backbone, load_backbone
from ..training.device import resolve_device, resolve_precision
from ..training.optim import build_optimizer, build_scheduler
from . import lit
from .captions import CaptionTable, read_caption_table, split_validation
from .config import PretrainConfig, separator
from .transforms import icon_train_transform

__all__ = ["PROVENANCE", "Pretraining", "build", "projection_overrides", "read_table",
           "weight_decay_groups"]

PROVENANCE = "clipood_pretrain.json"  # beside the weights: what they were trained on and how (record.provenance)


@dataclass
class Pretraining:
    """Everything one pretraining run works with."""

    cfg: PretrainConfig
    device: torch.device
    autocast_dtype: Optional[torch.dtype]
    backbone: Backbone
    table: CaptionTable
    train_rows: list[int]
    val_rows: list[int]
    tokens: torch.Tensor          # (N, context) token ids of every caption, computed once
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Optional[torch.amp.GradScaler]
    loss_fn: ClipLoss
    train_transform: object
    csv_sha256: str               # the table's fingerprint: a resumed run must read the same rows
    cache_features: bool = False  # both towers fully locked: train on frozen features (lit.py)
    features: Optional[lit.FrozenFeatures] = None

    @property
    def model(self) -> torch.nn.Module:
        return self.backbone.model


def read_table(cfg: PretrainConfig) -> CaptionTable:
    d = cfg.data
    return read_caption_table(d.csv, img_key=d.csv_img_key, caption_key=d.csv_caption_key,
                              domain_key=d.csv_domain_key, sep=separator(d), exclude_domains=d.exclude_domains,
                              max_tags=d.caption_max_tags)


def projection_overrides(cfg: PretrainConfig) -> Optional[dict]:
    """The model-config changes that --image-projection / --text-projection ask for (None: the architecture's)."""
    m = cfg.model
    if m.image_projection == "auto" and m.text_projection == "auto":
        return None
    import open_clip
    base = open_clip.get_model_config(m.arch.replace("/", "-")) or {}
    vision, text = dict(base.get("vision_cfg", {})), dict(base.get("text_cfg", {}))
    if m.image_projection != "auto" and "timm_model_name" not in vision:
        raise ConfigError(f"--image-projection: applies to timm image towers (e.g. clipood-lite0-minilm), not to "
                          f"{m.arch}")
    if m.text_projection != "auto" and "hf_model_name" not in text:
        raise ConfigError(f"--text-projection: applies to Hugging Face text towers (e.g. clipood-lite0-minilm), "
                          f"not to {m.arch}")
    out: dict = {}
    embed_dim = base.get("embed_dim")
    if m.image_projection != "auto":
        out["vision_cfg"] = {"timm_proj": "none" if m.image_projection == "none" else "linear",
                             "timm_proj_bias": m.image_projection == "linear-bias"}
        if m.image_projection == "none":
            import timm
            embed_dim = timm.create_model(vision["timm_model_name"], pretrained=False, num_classes=0).num_features
    if m.text_projection != "auto":
        out["text_cfg"] = {"hf_proj_type": None if m.text_projection == "none" else "linear"}
    text_proj = (out.get("text_cfg") or text).get("hf_proj_type")
    if embed_dim != base.get("embed_dim") and text_proj is None:
        raise ConfigError(f"--image-projection none: the image features are {embed_dim}-d; the text tower needs "
                          f"--text-projection linear to reach them")
    out["embed_dim"] = embed_dim
    return out


def weight_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's split: no decay on gains, biases, 1-D parameters and the logit scale."""
    def exclude(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
            {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": weight_decay}]


def build(cfg: PretrainConfig, table: Optional[CaptionTable] = None) -> Pretraining:
    table = table if table is not None else read_table(cfg)
    train_rows, val_rows = split_validation(table, cfg.data.val_size)
    device = resolve_device(cfg.compute.device)
    amp = resolve_precision(cfg.compute.precision, device)
    torch.manual_seed(cfg.train.seed)  # the initialisation of a model trained from scratch
    m = cfg.model
    backbone = load_backbone(m.arch, m.pretrained, device=device, cache_dir=m.cache_dir,
                             model_overrides=projection_overrides(cfg))
    backbone.model.requires_grad_(True)
    lit.lock_towers(backbone.model, m.lock_image, m.lock_image_unlocked_groups, m.lock_text)
    fully_locked = m.lock_image and not m.lock_image_unlocked_groups and m.lock_text
    cache_features = fully_locked and cfg.train.feature_cache == "auto"
    if cache_features and not lit.cacheable(backbone.model):
        raise ConfigError(f"--feature-cache auto: both towers are locked, but features can be cached only for a "
                          f"timm image tower and a Hugging Face text tower (e.g. clipood-lite0-minilm), not "
                          f"{m.arch}; pass --feature-cache off")
    if cache_features and cfg.data.caption_tag_dropout > 0:
        raise ConfigError("--caption-tag-dropout: changes captions every step, but with both towers locked each "
                          "caption is encoded once; pass --feature-cache off or drop the option")
    tokens = torch.cat([backbone.tokenizer(table.captions[i:i + 4096]) for i in range(0, len(table), 4096)])
    o = cfg.optim
    optimizer = build_optimizer(weight_decay_groups(backbone.model, o.weight_decay), lr=o.lr,
                                weight_decay=o.weight_decay, betas=o.betas, eps=o.eps, device=device)
    scheduler = build_scheduler(optimizer, total_steps=cfg.train.steps, warmup_steps=o.warmup_steps,
                                min_lr_ratio=o.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    d = cfg.data
    transform = icon_train_transform(backbone.preprocess_cfg, crop_min_scale=d.crop_min_scale,
                                     rotation=d.rotation, color_jitter=d.color_jitter, zoom_out=d.zoom_out,
                                     grayscale=d.grayscale)
    return Pretraining(cfg=cfg, device=device, autocast_dtype=amp, backbone=backbone, table=table,
                       train_rows=train_rows, val_rows=val_rows, tokens=tokens, optimizer=optimizer,
                       scheduler=scheduler, scaler=scaler, loss_fn=ClipLoss(), train_transform=transform,
                       csv_sha256=sha256_file(Path(cfg.data.csv)), cache_features=cache_features)
