"""The training loop: Algorithm 1 of the paper.

    initialise the average with theta_0 (done by the averager at construction)
    for t = 1..T:
        sample a batch from every training domain
        compute the loss (MMS, Eq. 3-4) on the image tower's features
        take an optimiser step
        alpha_t (Eq. 6) and fold theta_t into the average (Eq. 7)
    output the averaged model

Around it: checkpoints (every N steps and on SIGTERM/SIGINT), a stop on a non-finite
loss before it reaches the average, metrics, and the bad-image policy.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from typing import Optional

import torch
from tqdm.auto import tqdm

from ..data.datasets import ImageDataset, collate
from ..data.folder import check_same_data, fingerprint
from ..io import DiskFull
from ..data.sampling import DomainBalancedBatches
from ..errors import ClipoodError, ConfigError, DataError
from ..runs import RunDir
from . import checkpoint as ckpt
from .distributed import no_sync
from .execution import micro_batches, to_device
from .experiment import Experiment
from .optim import apply_gradients


class Interrupted(ClipoodError):
    """SIGTERM/SIGINT: the state was checkpointed; the run can be resumed."""


class NonFiniteLoss(ClipoodError):
    """The loss became NaN/inf; the average never saw that step."""


class BadImages:
    """Applies --bad-images: 'fail' raises naming the file, 'skip' collects them."""

    def __init__(self, policy: str, paths: list[str]):
        self.policy, self.paths, self.seen = policy, paths, {}

    def __call__(self, bad: list) -> None:
        for i, reason in bad:
            path = self.paths[i]
            if self.policy == "fail":
                raise DataError(f"{path}: unreadable image ({reason}); fix or remove it, or pass --bad-images skip")
            self.seen[path] = reason

    def items(self) -> list[tuple[str, str]]:
        return sorted(self.seen.items())

    def gather(self, dist) -> None:
        """Each rank skips images of its own share; afterwards every rank knows all of them (collective)."""
        for items in dist.all_gather_objects(self.items()) if dist.enabled else []:
            self.seen.update(dict(items))


@contextmanager
def handling_stop_signals(on_signal):
    """Call ``on_signal(signum)`` on SIGTERM/SIGINT instead of dying; the old handlers come back after."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: on_signal(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


@contextmanager
def stop_signals():
    """Turn SIGTERM/SIGINT into a flag the loop checks after each step."""
    flag = {"signal": None}
    with handling_stop_signals(lambda signum: flag.__setitem__("signal", signum)):
        yield flag


def training_state(exp: Experiment, bad: BadImages) -> dict:
    return {
        "trained": [t.detach().cpu().clone() for t in exp.trained],
        "optimizer": exp.optimizer.state_dict(),
        "scheduler": exp.scheduler.state_dict(),
        "averager": exp.averager.state_dict(),
        "scaler": exp.scaler.state_dict() if exp.scaler is not None else {},
        "rng": ckpt.rng_state(),
        "bad_images": [[p, r] for p, r in bad.items()],
        "data_fingerprint": fingerprint(exp.index.paths, exp.index.root),
    }


def restore_state(exp: Experiment, state: dict, bad: BadImages, allow_changed_data: bool = False) -> int:
    check_same_data(state.get("data_fingerprint"), fingerprint(exp.index.paths, exp.index.root), str(exp.index.root),
                    allow_changed_data)
    with torch.no_grad():
        if len(state["trained"]) != len(exp.trained):
            raise ClipoodError("--resume: the checkpoint does not match this model (different trained tensors)")
        for dst, src in zip(exp.trained, state["trained"]):
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
                                    cfg.train.seed, start=start, rank=dist.rank, world_size=dist.world_size)
    return torch.utils.data.DataLoader(
        ImageDataset(exp.index, exp.train_transform), batch_sampler=sampler, collate_fn=collate,
        num_workers=cfg.data.workers, pin_memory=exp.device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if cfg.data.workers > 0 else None)


def train_step(exp: Experiment, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimiser step on the global batch; returns its mean loss (detached, equal on every rank).

    The batch (this rank's share) runs as --accum-steps micro-batches. Each backpropagates
    its summed loss times world_size / (images in the global batch), so the accumulated,
    DDP-averaged gradient is exactly that of the global-batch mean loss, whatever the split.
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
            with torch.autocast(exp.device.type, dtype=exp.autocast_dtype, enabled=exp.autocast_dtype is not None):
                scores = model(images[part])
            loss_sum = exp.loss_fn(scores.float(), labels[part], reduction="sum")
            loss = loss_sum * scale
            (exp.scaler.scale(loss) if exp.scaler is not None else loss).backward()
        total += loss_sum.detach()
    loss = dist.all_reduce_sum(total) / count
    if not torch.isfinite(loss):  # same value on every rank: all stop together, nothing stepped
        return loss
    apply_gradients(exp.optimizer, exp.scheduler, exp.scaler, o.grad_clip)
    return loss


def resume_command(exp: Experiment, run: RunDir) -> str:
    """The command that continues this run (under torchrun when it ran under torchrun)."""
    if exp.dist.world_size > 1:
        return f"torchrun --nproc_per_node={exp.dist.world_size} -m clipood.cli train --resume {run.path}"
    return f"clipood train --resume {run.path}"


def fit(exp: Experiment, run: RunDir, *, resume_state: Optional[dict] = None, progress: bool = True,
        evaluate_fn=None, allow_changed_data: bool = False) -> BadImages:
    """Algorithm 1 from step start+1 to T; leaves the averaged weights in the model."""
    cfg, t_cfg = exp.cfg, exp.cfg.train
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    start = 0
    if resume_state is not None:
        start = restore_state(exp, resume_state, bad, allow_changed_data)
    run.truncate_metrics(start)  # a resumed run logs steps after its checkpoint again (all of them without one)
    T = t_cfg.steps
    labels_all = torch.as_tensor(exp.index.labels, dtype=torch.long)
    exp.classifier.train()
    bar = tqdm(total=T, initial=start, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    t0 = time.time()
    with stop_signals() as stop:
        step = start
        for step, (images, idx, bad_batch) in enumerate(train_loader(exp, start), start=start + 1):
            bad(bad_batch)
            if images is None:
                raise DataError("a whole training batch was unreadable; check the images listed in bad_images.txt")
            images = to_device(images, exp.device, exp.channels_last)
            labels = exp.label_map[labels_all[idx]].to(exp.device, non_blocking=True)
            loss = train_step(exp, images, labels)                     # sample, loss, step
            if not math.isfinite(loss_value := float(loss)):
                run.log({"step": step, "event": "non-finite loss", "loss": loss_value})
                raise NonFiniteLoss(
                    f"loss became {loss_value} at step {step}; the average and the last checkpoint are untouched. "
                    f"Lower --lr, enable --grad-clip, or check the data")
            exp.averager.update(step)                                  # alpha_t, average (Eq. 6-7)

            bar.update(1)
            if step % t_cfg.log_every == 0 or step == T:
                lr = exp.scheduler.get_last_lr()[0]
                run.log({"step": step, "loss": loss_value, "lr": lr, "elapsed_s": round(time.time() - t0, 3)})
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if evaluate_fn is not None and t_cfg.eval_every and step % t_cfg.eval_every == 0 and step < T:
                with exp.averager.swapped():
                    run.log({"step": step, "eval": evaluate_fn(progress=False)})
                exp.classifier.train()
            stopping = exp.dist.any(stop["signal"] is not None)  # a signal to any rank stops all
            due = (t_cfg.checkpoint_every and step % t_cfg.checkpoint_every == 0) or stopping
            if due and step < T:
                bad.gather(exp.dist)  # so a resumed run still lists what every rank skipped before it
                if exp.dist.is_main:  # rank 0 writes; the state is the same on every rank
                    try:
                        ckpt.save_checkpoint(run.path, step, training_state(exp, bad), t_cfg.keep_checkpoints)
                    except DiskFull as e:
                        raise DiskFull(e.path).with_hint(
                            f"the checkpoints written before are intact; free space, then: "
                            f"{resume_command(exp, run)}") from None
            if stopping and step < T:
                bar.close()
                exp.dist.barrier()  # the checkpoint is on disk before any rank exits
                raise Interrupted(f"stopped by signal {stop['signal'] or 'on another rank'} at step {step}/{T}; "
                                  f"checkpoint saved. Continue with: {resume_command(exp, run)}")
    bar.close()
    if step < T:
        raise ClipoodError(f"training stopped early at step {step} of {T}")
    exp.averager.copy_to()  # output the averaged model
    return bad
