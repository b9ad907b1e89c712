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

import math
import random
import time
from pathlib import Path
from typing import Optional

import torch
from open_clip.loss import ClipLoss

from ..config import config_record
from ..data.bad_images import BadImages
from ..data.folder import check_same_data, fingerprint
from ..data.loading import ImageDataset, collate
from ..data.sampling import DomainBalancedBatches, mix
from ..errors import ClipoodError
from ..evaluation import encode_images
from ..rundir import RunDir
from ..training import checkpoint as ckpt
from ..training.housekeeping import Housekeeping
from ..training.optim import apply_gradients
from . import lit
from .captions import CaptionTable, drop_tags
from .config import PretrainConfig, validate_pretrain
from .record import export, install, provenance
from .setup import Pretraining, build, read_table

__all__ = ["MAX_LOG_SCALE", "batch_texts", "batches", "create_run", "default_pretrain_name", "encode_texts",
           "evaluate_pairs", "features", "fit", "housekeeping", "open_run", "restore_state", "run_pretrain",
           "train_loader", "train_step", "training_state"]

MAX_LOG_SCALE = math.log(100)  # CLIP clamps the logit scale at 100


# ------------------------------------------------------------------ checkpoints


STATE_KEYS = ("step", "model", "optimizer", "scheduler", "rng")  # what restore_state reads


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
        "config": config_record(p.cfg),
    }


def restore_state(p: Pretraining, state: dict, bad: BadImages, allow_changed_data: bool = False) -> int:
    ckpt.check_same_config(state.get("config"), p.cfg)
    if state.get("csv_sha256", p.csv_sha256) != p.csv_sha256 and not allow_changed_data:
        raise ClipoodError(f"--resume: {p.cfg.data.csv} changed since this run started (its rows decide the data "
                           f"order); restore the original table, start a new run, or pass --allow-changed-data")
    check_same_data(state.get("data_fingerprint"), p.table.paths, Path(p.cfg.data.csv).parent, allow_changed_data)
    with ckpt.not_fitting(state):
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
                "lr": p.scheduler.get_last_lr()[0],
                "pairs_per_s": round((house.step - start) * t.batch_size / elapsed, 2)}

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
        p.features = lit.frozen_features(p.model, p.table, p.tokens, p.backbone.preprocess_val,
                                         p.backbone.preprocess_cfg, device=p.device, autocast_dtype=p.autocast_dtype,
                                         workers=p.cfg.data.workers, on_bad=bad, progress=progress)
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


def default_pretrain_name(cfg: PretrainConfig) -> str:
    arch = Path(cfg.model.arch.split(":", 1)[-1]).name or "model"
    return f"pretrain-{arch}-seed{cfg.train.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run(cfg: PretrainConfig) -> RunDir:
    return RunDir.create(cfg, name=default_pretrain_name, command="pretrain")


def open_run(path: str | Path) -> tuple[RunDir, PretrainConfig]:
    run, cfg = RunDir.open(path, base=PretrainConfig())
    if (run.path / "results.json").exists():
        with run.owned():
            run.tidy()
        raise ClipoodError(f"--resume: {run.path} is already finished (results.json exists)")
    return run, cfg



def run_pretrain(cfg: PretrainConfig, *, resume: Optional[RunDir] = None, progress: bool = True,
                 allow_changed_data: bool = False) -> tuple[RunDir, dict]:
    """Check the options and the table, pretrain (or continue), export the model folder, optionally install it."""
    cfg = validate_pretrain(cfg)
    table = read_table(cfg)                       # every data error before a run directory exists
    if resume is not None:
        run = resume.acquire()
        run.tidy()
    else:
        run = create_run(cfg)
    try:
        run.track(cfg.run.report_to, cfg)
        return _pretrain_in(run, cfg, table, resume is not None, progress, allow_changed_data)
    finally:
        run.release()


def _pretrain_in(run: RunDir, cfg: PretrainConfig, table: CaptionTable, resuming: bool, progress: bool,
                 allow_changed_data: bool) -> tuple[RunDir, dict]:
    p = build(cfg, table)
    state = ckpt.load_latest(run.path, required=STATE_KEYS) if resuming else None
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

