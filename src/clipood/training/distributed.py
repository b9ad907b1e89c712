"""Several processes, one per device, on PyTorch's own engine (torchrun + DistributedDataParallel).

``clipood train`` is the same command with one process or N:

    torchrun --nproc_per_node=8 -m clipood.cli train --root ... (any flags)
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --master_port=29500 --nproc_per_node=8 -m clipood.cli train ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``session``
reads them and joins the process group (NCCL on CUDA, gloo on CPU). The run is the
1-process run, split:

* Data: every rank takes every world_size-th image of the step's *global* batch
  (``DomainBalancedBatches`` striding), so --batch-size means the same with 1 or N
  processes and N processes reproduce the 1-process run.
* Gradients: each rank's loss is its sum of per-image losses times world_size / (images in
  the global batch); DDP's mean over ranks is then exactly the gradient of the
  global-batch mean, even when shares are unequal (skipped images).
* Averaging: after DDP's all-reduce every rank holds the same weights, so every rank
  updates its own BMA copy identically: no communication, no broadcast.
* Metrics: the loss is all-reduced each step (every rank sees the same value, so a
  non-finite loss stops all ranks at the same step); SIGTERM on any rank stops all.
* Evaluation is sharded: each rank encodes every world_size-th image once, the features
  are all-gathered, and every rank scores the same features (one matmul).
* Files: rank 0 creates the run directory and broadcasts its name; only rank 0 writes
  (metrics, checkpoints, export); the others hold a read-only view and meet it at a barrier.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ClipoodError, ConfigError
from ..rundir import RunDir

__all__ = ["DistContext", "ENV_VARS", "FollowerRun", "SINGLE", "env_world_size", "follower_view", "init", "no_sync",
           "session", "shared_run", "wrap"]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the single-process context makes every call a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    device: torch.device = torch.device("cpu")  # where collectives run (cuda:LOCAL_RANK for NCCL)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (on the tensor's device, which must be ``self.device``)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (e.g. a stop signal)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_object(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (small picklable objects: a run name, an error)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def all_gather_objects(self, obj: Any) -> list:
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def all_gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows in rank order; ranks may hold different numbers of rows.

        A rank with no rows may pass a (0, 0) tensor; the trailing size comes from the others.
        """
        if not self.enabled:
            return tensor
        src_device = tensor.device
        t = tensor.to(self.device)
        t2 = t if t.dim() == 2 else t.reshape(t.shape[0], 1)
        shape = torch.tensor([t2.shape[0], t2.shape[1]], device=self.device, dtype=torch.long)
        shapes = [torch.empty_like(shape) for _ in range(self.world_size)]
        dist.all_gather(shapes, shape)
        rows = [int(s[0]) for s in shapes]
        cols = max(int(s[1]) for s in shapes)
        padded = torch.zeros(max(rows), cols, dtype=t2.dtype, device=self.device)
        if t2.numel():
            padded[: t2.shape[0]] = t2
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        out = torch.cat([p[:n] for p, n in zip(parts, rows)])
        if tensor.dim() != 2:
            out = out.reshape(-1)
        return out.to(src_device)


SINGLE = DistContext()


def _env_int(name: str, default: Optional[int] = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set; launch several processes with "
                              f"torchrun --nproc_per_node=N -m clipood.cli train ...")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer; launch with torchrun") from None


def env_world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def _wants_cuda(device_name: str) -> bool:
    return device_name != "cpu" and torch.cuda.is_available()


def init(device_name: str = "auto", *, timeout_min: float = 30.0) -> DistContext:
    """Join the process group torchrun describes (no-op for one process)."""
    world = env_world_size()
    if world <= 1:
        return SINGLE
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set; launch with torchrun")
    if device_name.startswith("cuda:"):
        raise ConfigError(f"--device: {device_name!r} names one GPU but this is a {world}-process job; use "
                          f"--device auto or cuda (each process takes cuda:LOCAL_RANK)")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: 'cuda' asked for but CUDA is not available here; use --device cpu or auto")
    if _wants_cuda(device_name):
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPUs; "
                              f"lower --nproc_per_node")
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", torch.device("cuda", local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_min), **kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, device=device)


@contextlib.contextmanager
def session(device_name: str = "auto") -> Iterator[DistContext]:
    """The process group for the duration of a command; torn down on the way out."""
    ctx = init(device_name)
    owned = ctx.enabled and dist.is_initialized()
    try:
        yield ctx
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP around the module a training step runs (the image classifier); itself for one process.

    Buffers are broadcast from rank 0 only where training changes them (BatchNorm statistics
    of ResNet towers); a ViT's only buffer, the fixed class-text matrix, is never re-sent.
    """
    if not ctx.enabled:
        return module
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    ddp = nn.parallel.DistributedDataParallel
    # newer torch renamed broadcast_buffers (per-forward sync) to forward_sync_buffers
    sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
            else "broadcast_buffers")
    return ddp(module, device_ids=[device.index] if device.type == "cuda" else None,
               gradient_as_bucket_view=True, **{sync: has_bn})


def no_sync(model: nn.Module, skip: bool):
    """DDP's no_sync (accumulate gradients locally) when ``skip``; a no-op otherwise."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


class FollowerRun(RunDir):
    """A non-zero rank's view of the run directory: it reads (resume) but never writes."""

    def log(self, record: dict) -> None:
        pass

    def truncate_metrics(self, after_step: int) -> None:
        pass

    def write_results(self, results: dict) -> None:
        pass

    def write_bad_images(self, bad) -> None:
        pass


def shared_run(ctx: DistContext, create: Callable[[], RunDir]) -> RunDir:
    """Rank 0 creates the run directory and broadcasts its path (or its error) to the others."""
    if not ctx.enabled:
        return create()
    outcome: tuple = ("ok", None)
    run = None
    if ctx.is_main:
        try:
            run = create()
            outcome = ("ok", str(run.path))
        except ClipoodError as e:
            outcome = ("error", str(e))
    outcome = ctx.broadcast_object(outcome)
    if outcome[0] == "error":
        raise ClipoodError(outcome[1])
    return run if ctx.is_main else FollowerRun(Path(outcome[1]))


def follower_view(ctx: DistContext, run: RunDir) -> RunDir:
    """The run as this rank may touch it (rank 0: itself)."""
    return run if ctx.is_main else FollowerRun(run.path)
