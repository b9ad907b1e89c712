"""Everything a run builds from its config before step 1, in two parts.

``build_model``: the data index and splits, the backbone, the class-text embeddings (encoded
once, under no_grad), the classifier over the training classes and the transforms: all that
evaluation, zero-shot, WiSE-FT and export use. ``build_training``: which weights train, the
loss, the averager, the optimiser and its schedule. Kept apart from the loop so that the loop
reads like Algorithm 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..averaging import AVERAGERS, WeightAverage, averaged_tensors, build_averager
from ..config import Config
from ..data.datasets import prepare_dataset, prompt_template
from ..data.folder import ImageIndex
from ..data.splits import Splits
from ..data.transforms import train_transform
from ..errors import ConfigError
from ..evaluation import ClassWeights, ImageConditionalScores
from ..losses import LOSSES, build_loss
from ..model import (
    Backbone,
    ImageClassifier,
    LinearHead,
    PromptHead,
    TextHead,
    TowerTextHead,
    encode_class_texts,
    load_backbone,
)
from ..templates import expand_templates
from ..tuning import TUNINGS, build_head, build_phases, check_tuning, unique
from .device import resolve_device, resolve_precision
from .distributed import SINGLE, DistContext, wrap
from .optim import build_optimizer, build_scheduler
from .speed import apply_speed_options
from .storage import fp16_stored, round_to_fp16_

__all__ = ["Experiment", "Model", "build_experiment", "build_model", "build_training", "prepare_data",
           "resolve_temperature", "shot_seed", "validation_images"]


# CoCoOp's classifier encodes every class text for every image: evaluation passes at most this many texts
# through the text tower at once (images x classes), so memory does not grow with --eval-batch-size x classes
# (256 images x 150 classes took 17 GB on a 2-core machine).
TEXTS_PER_PASS = 2048


def resolve_temperature(temperature: Optional[float], backbone: Backbone) -> float:
    """tau: the given value, or 1 / exp(logit_scale) of the loaded model (official code: 1 / clip.logit_scale.exp())."""
    if temperature is not None:
        return float(temperature)
    scale = backbone.logit_scale
    if scale is None or not scale > 0:
        raise ConfigError(f"--temperature: {backbone.arch} has no learned logit scale to take tau from; pass "
                          f"--temperature (paper: 0.01)")
    return 1.0 / scale


def prepare_data(cfg: Config, training: bool = True) -> tuple[ImageIndex, Splits]:
    """The index and splits of the data: a named dataset (--dataset) or the folder --root, read alike."""
    d = cfg.data
    return prepare_dataset(d.dataset, d.root, layout=d.layout, training=training, holdout_domains=d.holdout_domains,
                           val_fraction=d.val_fraction, split_seed=d.split_seed, base_to_new=d.base_to_new,
                           shots=d.shots, shot_seed=shot_seed(cfg), class_names_file=d.class_names,
                           protocol=d.protocol)


def shot_seed(cfg: Config) -> int:
    """The few-shot subset's seed: --shot-seed, else the run's --seed (a new subset per seed)."""
    return cfg.data.shot_seed if cfg.data.shot_seed is not None else cfg.train.seed


@dataclass(kw_only=True)
class Model:
    """A model without a trainer: the data, the backbone, the class texts and the classifier (head) with its
    transforms. What evaluation, zero-shot, WiSE-FT and export need; ``build_training`` adds the trainer."""

    cfg: Config
    device: torch.device
    autocast_dtype: Optional[torch.dtype]
    index: ImageIndex
    splits: Splits
    backbone: Backbone
    templates: list  # the prompt templates, expanded (presets and files written out)
    text_features: torch.Tensor  # (C_all, D), all classes, computed once
    temperature: float  # tau: --temperature, or 1 / the backbone's learned logit scale
    classifier: ImageClassifier  # image tower + head over the training classes
    label_map: torch.Tensor  # global label -> position among the training classes
    train_transform: Callable
    dist: DistContext = SINGLE
    channels_last: bool = False  # images go to the device in channels_last format
    fp16_stored: list = field(default_factory=list)  # held at fp16 values (--master-weights fp16)

    def class_weights(self) -> ClassWeights | ImageConditionalScores:
        """Scores over all classes with the current weights (for evaluation)."""
        head = self.classifier.head
        if isinstance(head, PromptHead):  # the learned context on every class name (base-to-new: new ones too)
            trained_on_all = len(self.splits.train_classes) == len(self.index.class_names)
            every = head if trained_on_all else head.for_classes(self.index.class_names)
            if every.meta_net is None:
                return ClassWeights(every.class_features().float().cpu())
            per_pass = max(1, min(self.cfg.eval.batch_size, TEXTS_PER_PASS // len(self.index.class_names)))
            return ImageConditionalScores(lambda f: every(f.to(self.device)), len(self.index.class_names), per_pass)
        if isinstance(head, LinearHead):
            w = self.text_features.clone() / self.temperature
            b = torch.zeros(w.shape[0], device=w.device)
            rows = torch.as_tensor(self.splits.train_classes, device=w.device)
            w[rows] = head.linear.weight.detach().float()
            b[rows] = head.linear.bias.detach().float()
            return ClassWeights(w.cpu(), b.cpu())
        if isinstance(head, TowerTextHead):  # the text tower trained: every class encoded with today's weights
            return ClassWeights(encode_class_texts(self.backbone.model, self.backbone.tokenizer,
                                                   self.index.class_names, self.templates).cpu())
        return ClassWeights(self.text_features.cpu())


@dataclass(kw_only=True)
class Experiment(Model):
    """A model and its trainer: the loss, the tensors the averager tracks, the averager, the optimiser and its
    schedule; what Algorithm 1 (``loop.fit``) runs."""

    loss_fn: torch.nn.Module
    tracked: list  # the tensors the averager tracks and checkpoints save: trained parameters and BatchNorm statistics
    averager: WeightAverage
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: Optional[torch.amp.GradScaler]
    train_model: Optional[torch.nn.Module] = None  # what a step runs: the classifier, DDP-wrapped with N processes
    fp16_weights: list = field(default_factory=list)  # rounded to fp16 after each step (--master-weights fp16)
    before_step: Callable[[int], None] = lambda step: None  # the tuning's phases (LP-FT), by step

    def __post_init__(self):
        if self.train_model is None:
            self.train_model = self.classifier

    @property
    def loss_inputs(self) -> tuple[str, ...]:
        """What the loss takes beside the scores: 'features', 'domains' (its registry entry says)."""
        return LOSSES[self.cfg.loss.name].inputs


def build_model(cfg: Config, *, data: Optional[tuple[ImageIndex, Splits]] = None,
                dist: DistContext = SINGLE) -> Model:
    """The backbone, the class texts (encoded once), the head over the training classes and the transforms;
    no optimiser, no averager."""
    device = resolve_device(cfg.compute.device, dist)
    amp = resolve_precision(cfg.compute.precision, device)
    index, splits = data or prepare_data(cfg)
    torch.manual_seed(cfg.train.seed)  # only a random head init draws from it

    backbone = load_backbone(cfg.model.arch, cfg.model.pretrained, device=device, cache_dir=cfg.model.cache_dir,
                             activation=cfg.model.activation, interpolation=cfg.model.interpolation)
    model = backbone.model
    templates = expand_templates(cfg.model.templates, prompt_template(cfg.data.dataset))
    text_features = encode_class_texts(model, backbone.tokenizer, index.class_names, templates)
    tau = resolve_temperature(cfg.loss.temperature, backbone)

    train_text = text_features[splits.train_classes]
    loss_head = LOSSES[cfg.loss.name].head
    check_tuning(cfg.tuning.name, loss_head)
    head = build_head(cfg.tuning.name, backbone, [index.class_names[c] for c in splits.train_classes], templates,
                      **TUNINGS.section_arguments(cfg.tuning))
    if head is None and loss_head == "linear":  # the loss scores a linear head's logits (ERM, Eq. 1)
        head = LinearHead(train_text, tau, cfg.model.head_init).to(device)
    elif head is None:  # the class texts, encoded once (the tuning has no head of its own)
        head = TextHead(train_text)
    if isinstance(head, PromptHead) and head.learner.class_specific and len(splits.train_classes) < index.num_classes:
        raise ConfigError("--class-specific: a context learned per class cannot score the classes it was not trained "
                          "on (--base-to-new's new classes); leave it off")
    classifier = ImageClassifier(model.visual, head, frozen_norms=cfg.train.norm_layers == "frozen").to(device)
    done = apply_speed_options(model.visual, device, channels_last=cfg.compute.channels_last,  # before theta_0's copy
                               grad_checkpointing=cfg.train.grad_checkpointing, compile=cfg.train.compile)

    label_map = torch.full((index.num_classes,), -1, dtype=torch.long)
    label_map[torch.as_tensor(splits.train_classes)] = torch.arange(len(splits.train_classes))

    stored16 = fp16_stored(model.visual) if cfg.train.master_weights == "fp16" else []
    round_to_fp16_(stored16)  # theta_0 as the official code holds it (--master-weights fp16)
    return Model(cfg=cfg, device=device, autocast_dtype=amp, index=index, splits=splits, backbone=backbone,
                 templates=templates, text_features=text_features, temperature=tau, classifier=classifier,
                 label_map=label_map, train_transform=train_transform(backbone.preprocess_cfg), dist=dist,
                 channels_last=done["channels_last"], fp16_stored=stored16)


def validation_images(m: Model) -> list[int]:
    """The training domains' validation images of the training classes (the 'val' splits)."""
    indices = sorted({i for es in m.splits.evals if es.role == "val" for i in es.indices})
    return [i for i in indices if m.label_map[m.index.labels[i]] >= 0]


def build_training(m: Model) -> Experiment:
    """The trainer of a model: which weights train, the loss, the averager (theta_0 now), AdamW and its schedule."""
    cfg, device = m.cfg, m.device
    visual, head = m.classifier.visual, m.classifier.head
    tuning, loss = TUNINGS[cfg.tuning.name], LOSSES[cfg.loss.name]
    if m.dist.world_size > 1 and tuning.single_process:
        raise ConfigError(f"--tuning {cfg.tuning.name}: runs in one process; run it without torchrun")
    if loss.whole_batch and (cfg.train.accum_steps > 1 or m.dist.world_size > 1):
        raise ConfigError(f"--loss {cfg.loss.name}: its value is of the whole batch (not a sum over images), so it "
                          f"takes neither --accum-steps above 1 nor several processes")
    if "domains" in loss.inputs and cfg.train.batch_size < 2:
        raise ConfigError(f"--loss {cfg.loss.name}: compares the training domains' feature covariances, which "
                          f"need at least 2 images per domain; raise --batch-size")
    params = unique(tuning.trains(m.backbone.model, head, cfg.model.trainable))
    train_text = m.text_features[m.splits.train_classes]
    loss_fn = build_loss(cfg.loss.name, train_text, m.temperature, **LOSSES.section_arguments(cfg.loss)).to(device)

    frozen_norms = cfg.train.norm_layers == "frozen"
    tracked = unique(averaged_tensors(visual, buffers=not frozen_norms) + params)  # + the head's, the text tower's
    averaging = AVERAGERS.section_arguments(cfg.averaging)
    fp16 = None
    if averaging.get("precision") == "fp16":  # the tensors the official code stores in fp16 are averaged in fp16
        official16 = {id(t) for t in (m.fp16_stored or fp16_stored(visual))}
        fp16 = [id(t) in official16 for t in tracked]
    averager = build_averager(cfg.averaging.name, tracked, cfg.train.steps, fp16=fp16, **averaging)
    if averager.validation_every and not validation_images(m):
        raise ConfigError(f"--averaging {cfg.averaging.name}: follows the training domains' validation loss, and "
                          f"they have no validation images; raise --val-fraction")
    o = cfg.optim
    optimizer = build_optimizer(params, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas, eps=o.eps,
                                device=device)
    scheduler = build_scheduler(optimizer, total_steps=cfg.train.steps, warmup_steps=o.warmup_steps,
                                min_lr_ratio=o.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type) if m.autocast_dtype == torch.float16 else None
    before_step = build_phases(cfg.tuning.name, m.backbone.model, cfg.train.steps,
                               **TUNINGS.section_arguments(cfg.tuning))
    return Experiment(**{f.name: getattr(m, f.name) for f in dataclasses.fields(Model)}, loss_fn=loss_fn,
                      tracked=tracked, averager=averager, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                      train_model=wrap(m.classifier, m.dist, device),
                      fp16_weights=[t for t in m.fp16_stored if t.requires_grad], before_step=before_step)


def build_experiment(cfg: Config, *, data: Optional[tuple[ImageIndex, Splits]] = None,
                     dist: DistContext = SINGLE) -> Experiment:
    """``build_model`` and its ``build_training``: everything a run builds before step 1."""
    return build_training(build_model(cfg, data=data, dist=dist))
