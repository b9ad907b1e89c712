"""The sections fine-tuning (``tree.Config``) and pretraining (``pretraining.config``) share:
the optimiser, the loop, the device, the run folder. Pretraining takes them with its own defaults
(``fields.again``), so the checks of each option are written once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .fields import Range, opt

__all__ = ["ALL_COMMANDS", "DeviceConfig", "LoopConfig", "MAX_SEED", "OptimConfig", "PRECISIONS", "RunConfig"]

MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # training.device maps them to autocast dtypes
ALL_COMMANDS = ("train", "zeroshot", "eval")  # the commands of the fine-tuning tree (for ``scope``)


@dataclass
class OptimConfig:
    lr: float = opt(5e-6, "AdamW learning rate. Paper: 5e-6 (1e-5 for OfficeHome and DomainNet).",
                    within=Range(0, 1, lo_open=True, name="lr"), variant=True)
    weight_decay: float = opt(0.1, "AdamW weight decay, on every trained parameter. Paper: 0.1.",
                              within=Range(0, 10, name="wd"))
    betas: list = opt([0.9, 0.999], "AdamW betas.", flag="adam-betas", length=2,
                      each=Range(0, 1, hi_open=True, name="b"))
    eps: float = opt(1e-8, "AdamW epsilon.", flag="adam-eps", within=Range(0, lo_open=True, name="eps"))
    warmup_steps: int = opt(0, "linear warm-up steps before the cosine decay. Paper: 0.", within=Range(0))
    min_lr_ratio: float = opt(0.0, "final learning rate of the cosine decay, as a fraction of --lr.",
                              within=Range(0, 1))
    grad_clip: Optional[float] = opt(
        1.0,
        "clip the gradient norm to this value ('none' to disable). The paper does not clip (--profile official); "
        "on by default here as a guard against spikes. It binds at most steps (CLIP-sized towers have gradient "
        "norms above 1), but AdamW is invariant to a constant gradient scale: measured, the update moves within "
        "2.3 % and keeps a cosine of 0.997 with the unclipped one (docs/method.md).",
        within=Range(0, lo_open=True, name="norm"),
    )


@dataclass
class LoopConfig:
    steps: int = opt(5000, "optimisation steps T. Paper: 5000 (DomainNet 10000).", within=Range(1, 10_000_000),
                     variant=True)
    batch_size: int = opt(
        12,
        "images per training domain per step: each step draws this many from every training "
        "domain (paper: 12, i.e. 36 for 3 source domains). With one domain it is the batch.",
        within=Range(1, 65536),
    )
    seed: int = opt(0, "seed of initialisation-free randomness: data order, augmentation.",
                    within=Range(0, MAX_SEED, name="seed"), scope=("train", "zeroshot"))
    log_every: int = opt(10, "write train loss and learning rate to metrics.jsonl every N steps.", runtime=True,
                         within=Range(1))
    eval_every: int = opt(
        0, "evaluate the averaged model on the validation splits every N steps (0: only at the end); each "
           "evaluation is a line in metrics.jsonl and on the console.", within=Range(0),
    )
    checkpoint_every: int = opt(
        500, "write a resumable checkpoint every N steps (and on SIGTERM/SIGINT); 0 disables.", runtime=True,
        within=Range(0),
    )
    keep_checkpoints: int = opt(2, "keep the last K checkpoints.", runtime=True, within=Range(1))


@dataclass
class DeviceConfig:
    """Where and in what precision the model computes: every command that runs it (training and evaluation)."""

    device: str = opt("auto", "'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'.", runtime=True,
                      scope=ALL_COMMANDS)
    precision: str = opt(
        "auto",
        "'auto' (bf16 autocast on CUDA, fp32 on CPU), 'fp32', 'bf16' or 'fp16' (with a grad "
        "scaler). Master weights and the average stay fp32.",
        choices=PRECISIONS, scope=ALL_COMMANDS,
    )


@dataclass
class RunConfig:
    output_dir: str = opt("runs", "parent folder of run directories.", runtime=True,
                          scope=("train", "zeroshot"))
    name: Optional[str] = opt(
        None, "run directory name (default: [<dataset>-]<method>-<holdout>-seed<seed>-<timestamp>).",
        runtime=True, scope=("train", "zeroshot"),
    )
    report_to: str = opt(
        "none", "also report what metrics.jsonl records (loss, lr, evaluations, final results; the config as "
        "hyper-parameters) to 'tensorboard' (RUN/tensorboard), 'wandb' (WANDB_MODE=offline works offline; "
        "WANDB_PROJECT, default clipood), or both: 'tensorboard,wandb'. Needs pip install 'clipood[tracking]'.",
        runtime=True, scope=("train", "zeroshot"),
    )
