"""What pretrained weights were trained on and how (``clipood_pretrain.json``), written beside them,
and where ``--install-as TAG`` puts them."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import torch

from .. import __version__
from ..io import atomic_path, write_json
from ..model.backbones import save_open_clip_folder
from ..model.weights import installed_dir
from .setup import PROVENANCE, Pretraining

__all__ = ["AUGMENTATION_KEYS", "export", "install", "provenance", "towers_record"]

# the data options recorded under "augmentation" in clipood_pretrain.json
AUGMENTATION_KEYS = ("crop_min_scale", "rotation", "color_jitter", "zoom_out", "grayscale", "caption_tag_dropout")


def provenance(p: Pretraining, outcome: dict, val: dict) -> dict:
    """What the weights were trained on and how: written beside them (and into results.json)."""
    cfg, table = p.cfg, p.table
    train_domains: dict[str, int] = {}
    for i in p.train_rows:
        key = table.domains[i] if table.domains[i] is not None else ""
        train_domains[key] = train_domains.get(key, 0) + 1
    steps, batch = cfg.train.steps, cfg.train.batch_size
    return {
        "kind": "pretrain",
        "clipood_version": __version__,
        "arch": cfg.model.arch,
        "initial_weights": (p.backbone.weights.about if p.backbone.weights is not None else str(cfg.model.pretrained))
        + (f" (seed {cfg.train.seed})" if p.backbone.weights is None or p.backbone.weights.kind in ("random", "towers")
           else ""),
        "objective": "CLIP contrastive loss (open_clip.loss.ClipLoss), learnable logit scale clamped at 100",
        "towers": towers_record(p),
        "data": {
            "csv": str(Path(cfg.data.csv).resolve()),
            "csv_sha256": p.csv_sha256,
            "columns": {"image": cfg.data.csv_img_key, "caption": cfg.data.csv_caption_key,
                        "domain": cfg.data.csv_domain_key},
            "pairs_in_table": len(table) + sum(table.excluded.values()),
            "excluded_domains": table.excluded,
            "train_pairs": len(p.train_rows),
            "train_pairs_per_domain": dict(sorted(train_domains.items())),
            "validation_pairs": len(p.val_rows),
            "distinct_train_captions": len({table.captions[i] for i in p.train_rows}),
            "captions_at_context_limit": int((p.tokens[:, -1] != 0).sum()),
        },
        "steps": steps, "batch_size": batch, "pairs_seen": steps * batch,
        "epochs": round(steps * batch / max(1, len(p.train_rows)), 2),
        "augmentation": ({key: getattr(cfg.data, key) for key in AUGMENTATION_KEYS} if p.features is None else
                         "none: both towers locked, features of the eval preprocessing computed once"),
        "caption_max_tags": cfg.data.caption_max_tags,
        "optim": {"lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay, "betas": cfg.optim.betas,
                  "eps": cfg.optim.eps, "warmup_steps": cfg.optim.warmup_steps, "grad_clip": cfg.optim.grad_clip},
        "final_logit_scale": round(float(p.model.logit_scale.detach().exp()), 4),
        **outcome,
        "validation": val,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": str(p.device),
                        "threads": torch.get_num_threads(),
                        "precision": str(p.autocast_dtype).replace("torch.", "") if p.autocast_dtype else "fp32"},
    }


def towers_record(p: Pretraining) -> dict:
    """What trained: which towers were locked (LiT), the projections, and whether features were cached."""
    m, model_cfg = p.cfg.model, p.backbone.model_cfg
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    image = ("locked" + (f" except the last {m.lock_image_unlocked_groups} layer groups"
                         if m.lock_image_unlocked_groups else "")) if m.lock_image else "trained"
    record = {"image": image, "text": "locked" if m.lock_text else "trained",
              "trainable_parameters": sum(t.numel() for t in p.model.parameters() if t.requires_grad),
              "feature_cache": p.features.files if p.features is not None else None}
    if "timm_model_name" in vision:
        proj = vision.get("timm_proj", "linear")
        record["image_projection"] = proj + ("-bias" if proj == "linear" and vision.get("timm_proj_bias") else "")
    if "hf_model_name" in text:
        record["text_projection"] = text.get("hf_proj_type") or "none"
    return record


def export(p: Pretraining, model_dir: Path, record: dict) -> None:
    """The model as an open_clip local-dir folder, with its provenance record beside the weights."""
    save_open_clip_folder(p.backbone, model_dir)
    write_json(Path(model_dir) / PROVENANCE, record)


def install(p: Pretraining, model_dir: Path, tag: str) -> Path:
    """Write the model folder again where ``--arch ARCH --pretrained TAG`` finds it (a complete folder)."""
    dest = installed_dir(p.cfg.model.arch.replace("/", "-"), tag)
    save_open_clip_folder(p.backbone, dest)   # names its own folder for a Hugging Face text tower
    with atomic_path(dest / PROVENANCE) as tmp:
        shutil.copyfile(Path(model_dir) / PROVENANCE, tmp)
    return dest


