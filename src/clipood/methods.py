"""Methods by name: each is a set of config overrides that the same runner executes.

A method is what the paper compares (Tables 1-4, Fig. 5): the zero-shot model, the
linear-head ERM baseline (Eq. 1), vision-language fine-tuning with the plain metric
softmax (Eq. 2), CLIPood (MMS, Eq. 3-4, with BMA, Eq. 5-7) and its ablations, plus
WiSE-FT (Wortsman et al., CVPR 2022): the weights interpolated between the zero-shot
model and the fine-tuned one, a stronger baseline than the paper's. The rivals the paper
compares with and today's baselines are entries too: CORAL (Table 1), CLIPood with SWAD
(Table 5), LP-FT (Kumar et al., ICLR 2022) and FLYP (Goyal et al., CVPR 2023).

``Method.configure(cfg)`` returns a copy of ``cfg`` with the method's options set; the
options the user chose for everything else (data, schedule, lambda, beta) stay. A method's
hyper-parameters are those its loss and averager declare (their registries) and its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from .averaging import AVERAGERS
from .errors import ConfigError
from .losses import LOSSES
from .registry import Param
from .tuning import TUNINGS

__all__ = ["DEFAULT_WISE_ALPHAS", "METHODS", "Method", "get_method", "infer_method", "method_label", "registered",
           "wise_ft_key"]

TRAIN, ZEROSHOT, WISE_FT = "train", "zeroshot", "wise-ft"

# WiSE-FT's mixing coefficients: theta = (1 - alpha) theta_zeroshot + alpha theta_finetuned.
DEFAULT_WISE_ALPHAS = tuple(round(0.1 * k, 1) for k in range(11))


@dataclass(frozen=True)
class Method:
    """A method: its loss and averager (registry entries, whose parameters it takes) and its own parameters."""

    name: str
    label: str  # the row name in tables
    kind: str  # train | zeroshot | wise-ft
    help: str = ""
    loss: Optional[str] = None  # a LOSSES entry (None: the config's, e.g. for zero-shot, which trains nothing)
    averaging: Optional[str] = None  # an AVERAGERS entry
    tuning: str = "image"  # a TUNINGS entry: what trains
    params: tuple[Param, ...] = ()  # its own hyper-parameters, beside those of its loss and averager
    base: Optional[str] = None  # wise-ft: the method whose exported weights are interpolated

    def __post_init__(self):
        for registry, name in ((LOSSES, self.loss), (AVERAGERS, self.averaging), (TUNINGS, self.tuning)):
            if name is not None:
                registry[name]  # a known entry, or the error names the known ones

    def settings(self) -> dict:
        """The config options this method sets, by section: what trains, its loss and averager."""
        out: dict = {"tuning": {"name": self.tuning}} if self.kind == TRAIN else {}
        if self.loss is not None:
            out["loss"] = {"name": self.loss}
        if self.averaging is not None:
            out["averaging"] = {"name": self.averaging}
        return out

    def configure(self, cfg):
        """A copy of ``cfg`` with this method's options set (the input is not changed)."""
        cfg = copy.deepcopy(cfg)
        for section, values in self.settings().items():
            for key, value in values.items():
                setattr(getattr(cfg, section), key, value)
        return cfg

    @property
    def parts(self) -> tuple[str, Optional[str], Optional[str]]:
        """(tuning, loss, averaging): what identifies a training method in a run's results."""
        return self.tuning, self.loss, self.averaging

    def hyperparameters(self) -> list[tuple[str, Param]]:
        """('section.field', Param) of every hyper-parameter the method reads: its loss's, its averager's and its
        own (the report's settings show them)."""
        if self.kind == ZEROSHOT:
            return []
        out = [(TUNINGS.key(p), p) for p in TUNINGS[self.tuning].params]
        out += [(LOSSES.key(p), p) for p in LOSSES[self.loss].params] if self.loss else []
        out += [(AVERAGERS.key(p), p) for p in AVERAGERS[self.averaging].params] if self.averaging else []
        return out + [(f"method.{p.name}", p) for p in self.params]

    @property
    def linear_head(self) -> bool:
        return self.loss is not None and LOSSES[self.loss].head == "linear"

    @property
    def scores_by_class_texts(self) -> bool:
        """Its exported model classifies by the class texts of its towers (what WiSE-FT can interpolate)."""
        return self.kind == TRAIN and not self.linear_head and TUNINGS[self.tuning].class_texts


def _train(name: str, label: str, loss: str, averaging: str, help: str, tuning: str = "image") -> Method:
    return Method(name, label, TRAIN, help, loss=loss, averaging=averaging, tuning=tuning)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("zeroshot", "zero-shot", ZEROSHOT, "the pre-trained model, no training (class-text prompts as the "
                                              "classifier)", averaging="none"),
    _train("erm-linear", "ERM (linear head)", "linear", "none",
           "a linear head on the image features, cross-entropy (Eq. 1); the final weights"),
    _train("finetune", "fine-tune (softmax)", "metric_softmax", "none",
           "vision-language fine-tuning: cosine logits to frozen class texts, plain softmax (Eq. 2)"),
    _train("clipood", "CLIPood (MMS + BMA)", "mms", "bma",
           "Margin Metric Softmax (Eq. 3-4) and Beta Moving Average (Eq. 5-7)"),
    _train("clipood-no-margin", "CLIPood w/o margin", "metric_softmax", "bma",
           "Fig. 5 ablation: BMA with the plain metric softmax (lambda = 0)"),
    _train("clipood-fixed-margin", "CLIPood fixed margin", "fixed_margin", "bma",
           "Fig. 5 ablation: the same margin lambda for every other class instead of the adaptive one"),
    _train("clipood-ema", "CLIPood with EMA", "mms", "ema",
           "Fig. 5 ablation: MMS with an exponential moving average instead of BMA"),
    _train("clipood-uniform", "CLIPood with uniform avg", "mms", "uniform",
           "Fig. 5 ablation: MMS with the uniform average of theta_1..theta_T"),
    _train("clipood-no-avg", "CLIPood w/o averaging", "mms", "none",
           "Fig. 5 ablation: MMS, the final weights without averaging"),
    _train("clipood+swad", "CLIPood with SWAD", "mms", "swad",
           "paper Table 5: MMS with SWAD's dense average over the validation-loss valley instead of BMA"),
    _train("coral", "CORAL", "coral", "none",
           "DomainBed's CORAL on the CLIP classifier: metric softmax plus the penalty on the training domains' feature "
           "means and covariances (paper Table 1)"),
    _train("lp-ft", "LP-FT", "linear", "none",
           "a linear probe (the head alone), then full fine-tuning from it (Kumar et al. 2022)", tuning="lp-ft"),
    _train("flyp", "FLYP", "contrastive", "none",
           "both towers fine-tuned with CLIP's contrastive loss against the batch's class prompts (Goyal et al. "
           "2023); WiSE-FT on it with 'wise_ft_base: flyp'", tuning="both-towers"),
    _train("coop", "CoOp", "metric_softmax", "none",
           "learned context vectors before the class names, both towers frozen (Zhou et al. 2022; paper Tables 2-4)",
           tuning="coop"),
    _train("cocoop", "CoCoOp", "metric_softmax", "none",
           "CoOp plus a meta-net that makes an image-conditional shift of the context (Zhou et al. 2022; paper Tables "
           "2-4)", tuning="cocoop"),
    Method("wise-ft", "WiSE-FT (fine-tune)", WISE_FT,
           "weights interpolated between zero-shot and the 'finetune' run's final weights, one evaluation per alpha "
           "(Wortsman et al. 2022; not in the CLIPood paper)", loss="metric_softmax", averaging="none",
           base="finetune"),
]}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; known methods: {', '.join(METHODS)}")
    return METHODS[name]


ANY_MODELS = "models"  # the base of a ``clipood wise-ft MODEL_A MODEL_B`` run made outside a sweep


def wise_ft_key(base: str) -> str:
    """The report's key of WiSE-FT on ``base``: 'wise-ft' on the registered base, else 'wise-ft/BASE',
    so that WiSE-FT on CLIPood is neither merged with nor labelled as WiSE-FT on plain fine-tuning."""
    return WISE_FT if base == METHODS[WISE_FT].base else f"{WISE_FT}/{base}"


def registered(key: str) -> str:
    """The registered method a report key belongs to ('wise-ft/clipood' -> 'wise-ft')."""
    return key.split("/", 1)[0]


def method_label(key: str) -> str:
    """What tables and plots call a method key."""
    if key in METHODS:
        return METHODS[key].label
    name, _, base = key.partition("/")
    if name == WISE_FT and base == ANY_MODELS:
        return "WiSE-FT (two exported models)"
    if name == WISE_FT and base in METHODS:
        return f"WiSE-FT with {METHODS[base].label}"
    return key


def infer_method(results: dict) -> str:
    """The method name of a finished run from its results.json (for runs made without a sweep)."""
    kind = results.get("kind")
    if kind == ZEROSHOT:
        return "zeroshot"
    if kind == WISE_FT:
        return f"{WISE_FT}/{ANY_MODELS}"  # which two models were mixed is in results.json, not a method
    m = results.get("method") or {}
    key = (m.get("tuning", "image"), m.get("loss"), m.get("averaging"))  # runs before --tuning trained the image
    for method in METHODS.values():
        if method.kind == TRAIN and method.parts == key:
            return method.name
    return "+".join(key[1:] if key[0] == "image" else key)  # a combination no named method uses, by its parts
