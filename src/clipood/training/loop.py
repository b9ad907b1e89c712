"""The training loop: Algorithm 1 of the paper.

    initialise the average with theta_0 (done by the averager at construction)
    for t = 1..T:
        sample a batch from every training domain
        compute the loss (MMS, Eq. 3-4) on the image tower's features
        take an optimiser step
        alpha_t (Eq. 6) and fold theta_t into the average (Eq. 7)
    output the averaged model

``fit`` is those lines; the bad-image policy, metrics, evaluations, checkpoints (every N
steps and on SIGTERM/SIGINT) and the stop on a non-finite loss before it reaches the
average are ``housekeeping.Housekeeping``'s.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..config import config_record
from ..data.bad_images import BadImages
from ..data.folder import check_same_data, fingerprint
from ..data.loading import ImageDataset, collate
from ..data.sampling import DomainBalancedBatches
from ..errors import ClipoodError, ConfigError, DataError
from ..evaluation import encode_images
from ..rundir import RunDir
from . import checkpoint as ckpt
from .distributed import no_sync
from .experiment import Experiment, validation_images
from .housekeeping import Housekeeping
from .optim import apply_gradients
from .speed import micro_batches, to_device
from .storage import round_to_fp16_

__all__ = ["RENAMED_KEYS", "STATE_KEYS", "fit", "train_loader", "train_step"]


STATE_KEYS = ("step", "tracked", "optimizer", "scheduler", "averager", "rng")  # what restore_state reads
RENAMED_KEYS = {"trained": "tracked"}  # keys of older checkpoints (load_latest reads them as the new ones)


def training_state(exp: Experiment, bad: BadImages) -> dict:
    return {
        "tracked": [t.detach().cpu().clone() for t in exp.tracked],
        "optimizer": exp.optimizer.state_dict(),
        "scheduler": exp.scheduler.state_dict(),
        "averager": exp.averager.state_dict(),
        "scaler": exp.scaler.state_dict() if exp.scaler is not None else {},
        "rng": ckpt.rng_state(),
        "bad_images": [[p, r] for p, r in bad.items()],
        "data_fingerprint": fingerprint(exp.index.paths, exp.index.root),
        "config": config_record(exp.cfg),
    }


def restore_state(exp: Experiment, state: dict, bad: BadImages, allow_changed_data: bool = False) -> int:
    ckpt.check_same_config(state.get("config"), exp.cfg)
    check_same_data(state.get("data_fingerprint"), exp.index.paths, exp.index.root, allow_changed_data)
    with ckpt.not_fitting(state), torch.no_grad():
        average = state["averager"].get("average") or []
        for what, saved, live in (("tracked", state["tracked"], exp.tracked),
                                  ("averaged", average, exp.averager.average)):
            shapes = [tuple(t.shape) for t in saved], [tuple(t.shape) for t in live]
            if shapes[0] != shapes[1]:  # copy_ would broadcast a tensor of another shape without a word
                raise ClipoodError(f"--resume: {state.get('file', 'the checkpoint')} does not match this model (its "
                                   f"{what} tensors have other shapes or number: {len(shapes[0])} then, "
                                   f"{len(shapes[1])} now)")
        for dst, src in zip(exp.tracked, state["tracked"]):
            dst.copy_(src)
        exp.averager.load_state_dict(state["averager"])
    return ckpt.restore_optimisation(state, exp.optimizer, exp.scheduler, exp.scaler, bad.seen)


def train_loader(exp: Experiment, start: int) -> torch.utils.data.DataLoader:
    cfg = exp.cfg
    by_domain = {d: [] for d in exp.splits.train_domains}
    for i in exp.splits.train:
        by_domain[exp.index.domains[exp.index.domain_ids[i]]].append(i)
    empty = [d for d, idx in by_domain.items() if not idx]
    if empty:
        raise DataError(f"training domain '{empty[0]}' has no training images after the split; "
                        f"lower --val-fraction or add images")
    dist, accum = exp.dist, cfg.train.accum_steps
    global_batch = cfg.train.batch_size * len(by_domain)
    if global_batch < dist.world_size * accum:
        raise ConfigError(f"--accum-steps: the global batch of {global_batch} images ({cfg.train.batch_size} per "
                          f"domain x {len(by_domain)} domains) cannot be split into {accum} micro-batches on each of "
                          f"{dist.world_size} processes; raise --batch-size or lower --accum-steps")
    sampler = DomainBalancedBatches(list(by_domain.values()), cfg.train.batch_size, cfg.train.steps,
                                    cfg.train.seed, start=start, rank=dist.rank, world_size=dist.world_size,
                                    replacement=cfg.train.sampling == "replacement")
    return torch.utils.data.DataLoader(
        ImageDataset(exp.index, exp.train_transform), batch_sampler=sampler, collate_fn=collate,
        num_workers=cfg.data.workers, pin_memory=exp.device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if cfg.data.workers > 0 else None)


def train_step(exp: Experiment, images: torch.Tensor, labels: torch.Tensor,
               domains: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One optimiser step on the global batch; returns its mean loss (detached, equal on every rank).

    The batch (this rank's share) runs as --accum-steps micro-batches. Each backpropagates
    its summed loss times world_size / (images in the global batch), so the accumulated,
    DDP-averaged gradient is exactly that of the global-batch mean loss, whatever the split.
    A loss that takes the features or the domains (CORAL) gets them by keyword.
    """
    o, dist, model = exp.cfg.optim, exp.dist, exp.train_model
    n = float(len(labels))  # images this rank holds; summed over ranks below (a host float with one process)
    count = dist.all_reduce_sum(torch.tensor(n, device=exp.device)) if dist.enabled else n
    scale = dist.world_size / count
    total = torch.zeros((), device=exp.device)
    exp.optimizer.zero_grad(set_to_none=True)
    parts = micro_batches(len(labels), exp.cfg.train.accum_steps)
    for i, part in enumerate(parts):
        with no_sync(model, skip=i < len(parts) - 1):  # DDP all-reduces once, after the last micro-batch
            extra = {}
            with torch.autocast(exp.device.type, dtype=exp.autocast_dtype, enabled=exp.autocast_dtype is not None):
                if "features" in exp.loss_inputs:
                    scores, extra["features"] = model(images[part], with_features=True)
                else:
                    scores = model(images[part])
            if "domains" in exp.loss_inputs:
                extra["domains"] = domains[part]
            loss_sum = exp.loss_fn(scores.float(), labels[part], reduction="sum", **extra)
            loss = loss_sum * scale
            (exp.scaler.scale(loss) if exp.scaler is not None else loss).backward()
        total += loss_sum.detach()
    loss = dist.all_reduce_sum(total) / count
    if not torch.isfinite(loss):  # same value on every rank: all stop together, nothing stepped
        return loss
    apply_gradients(exp.optimizer, exp.scheduler, exp.scaler, o.grad_clip)
    round_to_fp16_(exp.fp16_weights)  # --master-weights fp16: the official code keeps the weights in fp16
    return loss


@torch.no_grad()
def validation_loss(exp: Experiment, bad: BadImages) -> float:
    """Cross-entropy of the current model on the training domains' validation images ('val' splits), scored among
    the training classes (cosine / tau, or a linear head's logits): the loss SWAD's window follows (the official
    code's tr_outloss)."""
    train = torch.as_tensor(exp.splits.train_classes)
    indices = validation_images(exp)
    feats, ids = encode_images(exp.classifier.visual, exp.index, indices, exp.backbone.preprocess_val,
                               batch_size=exp.cfg.eval.batch_size, device=exp.device, workers=exp.cfg.data.workers,
                               autocast_dtype=exp.autocast_dtype, on_bad=bad, progress=False)
    weights = exp.class_weights()
    scores = weights.scores(feats)[:, train]
    logits = scores if weights.bias is not None else scores / exp.temperature
    labels = exp.label_map[torch.as_tensor([exp.index.labels[i] for i in ids.tolist()])]
    return float(torch.nn.functional.cross_entropy(logits.float(), labels))


def resume_command(exp: Experiment, run: Optional[RunDir]) -> str:
    """The command that continues this run (under torchrun when it ran under torchrun)."""
    if run is None:
        return ""
    if exp.dist.world_size > 1:
        return f"torchrun --nproc_per_node={exp.dist.world_size} -m clipood.cli train --resume {run.path}"
    return f"clipood train --resume {run.path}"


def housekeeping(exp: Experiment, run: Optional[RunDir], bad: BadImages, start: int, progress: bool,
                 evaluate_fn: Optional[Callable]) -> Housekeeping:
    """Logging, evaluation of the averaged model, checkpoints and signals for ``fit``."""
    t = exp.cfg.train

    def evaluate() -> dict:
        with exp.averager.swapped():  # the model that will be exported: the average
            record = {"eval": evaluate_fn(progress=False)}
        exp.classifier.train()
        return record

    def validate(step: int) -> dict:  # the live model's loss on the training domains' validation split (SWAD)
        loss = validation_loss(exp, bad)
        exp.averager.end_segment(step, loss)
        exp.classifier.train()
        return {"val_loss": loss}
    return Housekeeping(
        total=t.steps, start=start, bad=bad, state=lambda: training_state(exp, bad), run=run, log_every=t.log_every,
        eval_every=t.eval_every, checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
        evaluate=evaluate if evaluate_fn is not None else None, validate_every=exp.averager.validation_every,
        validate=validate,
        log_fields=lambda: {"lr": exp.scheduler.get_last_lr()[0]}, resume_command=resume_command(exp, run),
        dist=exp.dist, progress=progress)


def fit(exp: Experiment, run: Optional[RunDir] = None, *, resume_state: Optional[dict] = None, progress: bool = True,
        evaluate_fn: Optional[Callable] = None, allow_changed_data: bool = False) -> BadImages:
    """Algorithm 1 from step start+1 to T; leaves the averaged weights in the model.

    ``run`` None trains in memory (nothing logged or checkpointed)."""
    bad = BadImages(exp.cfg.data.bad_images, exp.index.paths)
    start = restore_state(exp, resume_state, bad, allow_changed_data) if resume_state is not None else 0
    labels = torch.as_tensor(exp.index.labels, dtype=torch.long)
    domains = torch.as_tensor(exp.index.domain_ids, dtype=torch.long)
    exp.classifier.train()
    with housekeeping(exp, run, bad, start, progress, evaluate_fn) as house:
        for step, images, idx in house.steps(train_loader(exp, start)):      # sample a batch from every domain
            images = to_device(images, exp.device, exp.channels_last)
            y = exp.label_map[labels[idx]].to(exp.device, non_blocking=True)
            exp.before_step(step)                                              # (LP-FT: the head alone first)
            loss = house.check(train_step(exp, images, y, domains[idx].to(exp.device)))  # MMS (Eq. 3-4), AdamW
            exp.averager.update(step)                                          # alpha_t (Eq. 6), BMA (Eq. 7)
            house.after_step(loss)                                             # log, evaluate, checkpoint, signals
    exp.averager.copy_to()                                                     # output the averaged model
    return bad
