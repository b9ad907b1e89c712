"""``clipood pretrain``: CLIP's contrastive objective on an image-caption table, the way open_clip trains.

    (LiT: --lock-image / --lock-text freeze the towers; with both locked, features are cached, lit.py)
    for t = 1..T:
        draw B pairs (a seeded permutation stream: the batch is a function of t, so resume is exact)
        I, X = L2-normalised image and text embeddings; s = exp(logit_scale), learnable
        loss = (CE(s I X^T, diagonal) + CE(s X I^T, diagonal)) / 2      (open_clip.loss.ClipLoss)
        AdamW step (linear warm-up, cosine decay), then clamp log s to [0, ln 100] (CLIP)
    export an open_clip local-dir folder with a record of exactly what it was trained on

The exported folder loads with ``--arch local-dir:RUN/model`` (or, installed with
``--install-as TAG``, with ``--arch ARCH --pretrained TAG``): the same backbone path as
any open_clip model.
"""

from __future__ import annotations

import hashlib
import math
import platform
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from open_clip.loss import ClipLoss

from .. import __version__
from ..data.bad_images import BadImages
from ..data.folder import check_same_data, fingerprint
from ..data.loading import ImageDataset, collate
from ..data.sampling import DomainBalancedBatches, mix
from ..errors import ClipoodError, ConfigError
from ..evaluation import encode_images
from ..io import atomic_path, write_json
from ..model.backbones import Backbone, installed_dir, load_backbone, save_open_clip_folder
from ..rundir import RunDir
from ..training import checkpoint as ckpt
from ..training.device import resolve_device, resolve_precision
from ..training.housekeeping import Housekeeping
from ..training.optim import apply_gradients, build_optimizer, build_scheduler
from . import lit
from .captions import CaptionTable, drop_tags, read_caption_table, split_validation
from .config import PretrainConfig, separator
from .transforms import icon_train_transform

# the data options recorded under "augmentation" in clipood_pretrain.json
AUGMENTATION_KEYS = ("crop_min_scale", "rotation", "color_jitter", "zoom_out", "grayscale", "caption_tag_dropout")

PROVENANCE = "clipood_pretrain.json"
MAX_LOG_SCALE = math.log(100)  # CLIP clamps the logit scale at 100


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
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
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
                       csv_sha256=_sha256(Path(cfg.data.csv)), cache_features=cache_features)


# ------------------------------------------------------------------ checkpoints


def training_state(p: Pretraining, bad: BadImages) -> dict:
    return {
        "model": {k: v.detach().cpu().clone() for k, v in p.model.state_dict().items()},
        "optimizer": p.optimizer.state_dict(),
        "scheduler": p.scheduler.state_dict(),
        "scaler": p.scaler.state_dict() if p.scaler is not None else {},
        "rng": ckpt.rng_state(),
        "bad_images": [[path, reason] for path, reason in bad.items()],
        "csv_sha256": p.csv_sha256,
        "data_fingerprint": fingerprint(p.table.paths, Path(p.cfg.data.csv).parent),
    }


def restore_state(p: Pretraining, state: dict, bad: BadImages, allow_changed_data: bool = False) -> int:
    if state.get("csv_sha256", p.csv_sha256) != p.csv_sha256 and not allow_changed_data:
        raise ClipoodError(f"--resume: {p.cfg.data.csv} changed since this run started (its rows decide the data "
                           f"order); restore the original table, start a new run, or pass --allow-changed-data")
    check_same_data(state.get("data_fingerprint"), fingerprint(p.table.paths, Path(p.cfg.data.csv).parent),
                    str(Path(p.cfg.data.csv).parent), allow_changed_data)
    try:
        p.model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ClipoodError(f"--resume: the checkpoint does not match --arch {p.cfg.model.arch} "
                           f"({str(e).splitlines()[0][:200]})") from None
    return ckpt.restore_optimisation(state, p.optimizer, p.scheduler, p.scaler, bad.seen)


# ------------------------------------------------------------------ the loop


def train_loader(p: Pretraining, start: int) -> torch.utils.data.DataLoader:
    """Batches of (row, augmentation seed) from one endless seeded permutation stream of the training rows."""
    t = p.cfg.train
    sampler = DomainBalancedBatches([p.train_rows], t.batch_size, t.steps, t.seed, start=start)
    workers = p.cfg.data.workers
    return torch.utils.data.DataLoader(
        ImageDataset(p.table, p.train_transform), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        pin_memory=p.device.type == "cuda", prefetch_factor=4 if workers > 0 else None)


def batches(p: Pretraining, start: int):
    """(images, row indices, unreadable) per step; rows only when training on cached features."""
    if p.features is None:
        yield from train_loader(p, start)
        return
    t = p.cfg.train
    for batch in DomainBalancedBatches([p.train_rows], t.batch_size, t.steps, t.seed, start=start):
        yield None, torch.as_tensor(p.features.readable([i for i, _ in batch]), dtype=torch.long), []


def batch_texts(p: Pretraining, idx: torch.Tensor, step: int) -> torch.Tensor:
    """Token ids of the batch's captions; with --caption-tag-dropout, tags dropped by a (seed, step) draw."""
    drop = p.cfg.data.caption_tag_dropout
    if drop == 0:
        return p.tokens[idx]
    rng = random.Random(mix(p.cfg.train.seed, step, 2))
    return p.backbone.tokenizer([drop_tags(p.table.captions[i], drop, rng) for i in idx.tolist()])


def features(p: Pretraining, images: Optional[torch.Tensor], idx: torch.Tensor, texts: Optional[torch.Tensor]):
    """Normalised image and text features and exp(logit scale): the whole model, or heads on cached features."""
    if p.features is not None:
        dev = p.device
        return lit.projected(p.model, p.features.image[idx].to(dev), p.features.text[idx].to(dev))
    return p.model(images, texts)[:3]


def train_step(p: Pretraining, images: Optional[torch.Tensor], idx: torch.Tensor,
               texts: Optional[torch.Tensor]) -> torch.Tensor:
    """One AdamW step on CLIP's loss; the logit scale is clamped afterwards, as CLIP does."""
    with torch.autocast(p.device.type, dtype=p.autocast_dtype, enabled=p.autocast_dtype is not None):
        image_features, text_features, scale = features(p, images, idx, texts)
    loss = p.loss_fn(image_features.float(), text_features.float(), scale.float())
    if not torch.isfinite(loss):
        return loss.detach()
    p.optimizer.zero_grad(set_to_none=True)
    (p.scaler.scale(loss) if p.scaler is not None else loss).backward()
    apply_gradients(p.optimizer, p.scheduler, p.scaler, p.cfg.optim.grad_clip)
    with torch.no_grad():
        p.model.logit_scale.clamp_(0, MAX_LOG_SCALE)
    return loss.detach()


@torch.no_grad()
def encode_texts(p: Pretraining, rows, batch_size: int = 512) -> torch.Tensor:
    was_training = p.model.training
    p.model.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        tok = p.tokens[torch.as_tensor(rows[i:i + batch_size], dtype=torch.long)].to(p.device)
        with torch.autocast(p.device.type, dtype=p.autocast_dtype, enabled=p.autocast_dtype is not None):
            out.append(torch.nn.functional.normalize(p.model.encode_text(tok).float(), dim=-1).cpu())
    p.model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate_pairs(p: Pretraining, rows: list[int], bad: BadImages, *, progress: bool = False) -> dict:
    """Held-out pairs: CLIP's loss, and top-1 retrieval both ways among them.

    A retrieval counts as right when the retrieved item has the same caption as the query
    (the same emoji can appear in several styles with one caption).
    """
    if p.features is not None:
        rows_kept = p.features.readable(rows)
        if len(rows_kept) < 2:
            return {}
        was_training = p.model.training
        p.model.eval()
        feats, texts, _ = lit.projected(p.model, p.features.image[rows_kept].to(p.device),
                                        p.features.text[rows_kept].to(p.device))
        feats, texts = feats.float().cpu(), texts.float().cpu()
        p.model.train(was_training)
    else:
        feats, ids = encode_images(p.model.visual, p.table, rows, p.backbone.preprocess_val, batch_size=256,
                                   device=p.device, workers=p.cfg.data.workers, autocast_dtype=p.autocast_dtype,
                                   on_bad=bad, desc="held-out pairs", progress=progress)
        if len(ids) < 2:
            return {}
        rows_kept = ids.tolist()
        texts = encode_texts(p, rows_kept)
    scale = p.model.logit_scale.exp().detach().float().cpu()
    loss = ClipLoss()(feats, texts, scale)
    sims = feats @ texts.T
    caps = [p.table.captions[i] for i in rows_kept]
    i2t = sum(caps[j] == caps[i] for i, j in enumerate(sims.argmax(dim=1).tolist())) / len(caps)
    t2i = sum(caps[j] == caps[i] for i, j in enumerate(sims.argmax(dim=0).tolist())) / len(caps)
    return {"n": len(caps), "loss": round(float(loss), 5), "i2t_top1": round(i2t, 5), "t2i_top1": round(t2i, 5)}


def housekeeping(p: Pretraining, run: RunDir, bad: BadImages, start: int, progress: bool) -> Housekeeping:
    """Logging (loss, logit scale, lr, pairs/s), held-out pairs, checkpoints and signals for ``fit``."""
    t = p.cfg.train
    t0 = time.time()

    def log_fields() -> dict:
        elapsed = max(time.time() - t0, 1e-9)
        return {"logit_scale": round(float(p.model.logit_scale.detach().exp()), 4),
                "lr": p.scheduler.get_last_lr()[0], "pairs_per_s": round((house.step - start) * t.batch_size / elapsed, 2)}

    def evaluate() -> dict:
        record = {"val": evaluate_pairs(p, p.val_rows, bad)}
        lit.set_train_mode(p.model, p.cfg.model.lock_image)
        return record
    house = Housekeeping(
        total=t.steps, start=start, bad=bad, state=lambda: training_state(p, bad), run=run, log_every=t.log_every,
        eval_every=t.eval_every, checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
        evaluate=evaluate if p.val_rows else None, log_fields=log_fields, min_batch=2,
        resume_command=f"clipood pretrain --resume {run.path}", progress=progress, desc="pretrain",
        advice="Lower --lr or set --grad-clip")
    return house


def fit(p: Pretraining, run: RunDir, *, resume_state: Optional[dict] = None, progress: bool = True,
        allow_changed_data: bool = False) -> dict:
    """CLIP's loss, steps start+1..T; returns timing and the last train loss."""
    bad = BadImages(p.cfg.data.bad_images, p.table.paths)
    start = restore_state(p, resume_state, bad, allow_changed_data) if resume_state is not None else 0
    if p.cache_features and p.features is None:
        p.features = lit.frozen_features(p.model, p.table, p.tokens, p.backbone.preprocess_val, p.backbone.preprocess_cfg,
                                         device=p.device, autocast_dtype=p.autocast_dtype, workers=p.cfg.data.workers,
                                         on_bad=bad, progress=progress)
    lit.set_train_mode(p.model, p.cfg.model.lock_image)
    t0, loss = time.time(), float("nan")
    with housekeeping(p, run, bad, start, progress) as house:
        for step, images, idx in house.steps(batches(p, start)):                 # B pairs (rows when cached)
            if p.features is None:
                images = images.to(p.device, non_blocking=True)
            texts = batch_texts(p, idx, step).to(p.device, non_blocking=True) if p.features is None else None
            loss = house.check(train_step(p, images, idx, texts))                # CLIP loss, AdamW, clamp the scale
            house.after_step(loss)                                               # log, evaluate, checkpoint, signals
    elapsed = time.time() - t0
    if bad.items():
        run.write_bad_images(bad.items())
    T = p.cfg.train.steps
    return {"final_train_loss": loss, "train_time_s": round(elapsed, 2),
            "steps_per_s": round((T - start) / elapsed, 4) if elapsed > 0 else None, "bad_images": len(bad.items())}


# ------------------------------------------------------------------ the run


def run_name(cfg: PretrainConfig) -> str:
    arch = Path(cfg.model.arch.split(":", 1)[-1]).name or "model"
    return f"pretrain-{arch}-seed{cfg.train.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run(cfg: PretrainConfig) -> RunDir:
    return RunDir.create(cfg, name=run_name, command="pretrain")


def open_run(path: str | Path) -> tuple[RunDir, PretrainConfig]:
    run, cfg = RunDir.open(path, base=PretrainConfig())
    if (run.path / "results.json").exists():
        with run.owned():
            run.tidy()
        raise ClipoodError(f"--resume: {run.path} is already finished (results.json exists)")
    return run, cfg


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def run_pretrain(cfg: PretrainConfig, *, resume: Optional[RunDir] = None, progress: bool = True,
                 allow_changed_data: bool = False) -> tuple[RunDir, dict]:
    """Read and check the table, pretrain (or continue), export the model folder, optionally install it."""
    table = read_table(cfg)                       # every data error before a run directory exists
    if resume is not None:
        run = resume.acquire()
        run.tidy()
    else:
        run = create_run(cfg)
    try:
        return _pretrain_in(run, cfg, table, resume is not None, progress, allow_changed_data)
    finally:
        run.release()


def _pretrain_in(run: RunDir, cfg: PretrainConfig, table: CaptionTable, resuming: bool, progress: bool,
                 allow_changed_data: bool) -> tuple[RunDir, dict]:
    p = build(cfg, table)
    state = ckpt.load_latest(run.path) if resuming else None
    outcome = fit(p, run, resume_state=state, progress=progress, allow_changed_data=allow_changed_data)
    val = evaluate_pairs(p, p.val_rows, BadImages("skip", p.table.paths), progress=progress) if p.val_rows else {}
    run.log({"step": cfg.train.steps, "val": val, "final": True})
    results = provenance(p, outcome, val)
    export(p, run.model_dir, results)
    if cfg.run.install_as:
        results["installed"] = str(install(p, run.model_dir, cfg.run.install_as))
    run.write_results(results)
    run.tidy()
    return run, results
