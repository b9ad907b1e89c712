"""What a run trains (--tuning): which weights, with which head, in which phases.

* image (the paper): the image tower (--trainable) and the head; the class texts are encoded
  once by the frozen text tower.
* lp-ft (Kumar et al., ICLR 2022): a linear probe, then full fine-tuning from it: for the
  first fraction of the steps only the linear head trains, then the image tower with it.
* both-towers (FLYP, Goyal et al., CVPR 2023): the image and the text tower train; the
  class prompts are encoded at every step, with gradients (``model.heads.TowerTextHead``).
* coop (Zhou et al., IJCV 2022): both towers frozen; M context vectors in front of the class
  names train (``model.prompts``).
* cocoop (Zhou et al., CVPR 2022): CoOp plus a meta-net that shifts every context token by a
  vector made from the image.

``TUNINGS`` is the registry: each entry declares its parameters (the config's ``tuning``
section, --help and the docs follow from them), builds its head (None: the loss's own, the
class texts or a linear head), names the weights that train, and may change them before a
step (``phases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .errors import ConfigError
from .model.backbones import Backbone, set_trainable
from .model.heads import TowerTextHead, text_parameters
from .model.prompts import POSITIONS, MetaNet, PromptHead, PromptLearner
from .registry import Entry, Param, Range, Registry

__all__ = ["LP_FRACTION", "TUNINGS", "Tuning", "build_head", "build_phases", "check_tuning", "lp_steps", "unique"]


def unique(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor once, in order (a head may share parameters with the model)."""
    seen: set[int] = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def image_tower(model: nn.Module, head: nn.Module, trainable: str) -> list[nn.Parameter]:
    """The image tower's --trainable parameters and the head's own trainable ones (a linear head's)."""
    return set_trainable(model, trainable) + [p for p in head.parameters() if p.requires_grad]


def both_towers(model: nn.Module, head: nn.Module, trainable: str) -> list[nn.Parameter]:
    """The image tower's --trainable parameters and the whole text tower (not the logit scale). The model is put
    in train mode, as FLYP trains it (a Hugging Face text tower's dropout on); the image tower's BatchNorm layers
    follow --norm-layers, as the classifier sets them."""
    model.train()
    params = set_trainable(model, trainable)
    text = text_parameters(model)
    for p in text:
        p.requires_grad_(True)
    return unique(params + text + [p for p in head.parameters() if p.requires_grad])


def prompts_only(model: nn.Module, head: nn.Module, trainable: str) -> list[nn.Parameter]:
    """Both towers frozen (and in eval mode: a Hugging Face text tower's dropout off, as CoOp's frozen CLIP);
    only the head's context vectors (and CoCoOp's meta-net) train. --trainable does not apply."""
    model.requires_grad_(False)
    model.eval()
    return [p for p in head.parameters() if p.requires_grad]


def prompt_head(backbone: Backbone, class_names: Sequence[str], *, n_ctx: int, ctx_init: str,
                class_specific: bool = False, class_position: str = "end", meta_net: bool = False) -> PromptHead:
    """CoOp's learned prompts over ``class_names`` (CoCoOp's with ``meta_net``); n_ctx 0: the phrase's length."""
    learner = PromptLearner(backbone.model, backbone.tokenizer, class_names, n_ctx=n_ctx or None, ctx_init=ctx_init,
                            class_specific=class_specific, position=class_position)
    net = None
    if meta_net:  # image embedding (embed_dim) -> a shift of the context's width
        net = MetaNet(int(backbone.model_cfg["embed_dim"]), learner.width).to(learner.ctx.device)
    return PromptHead(learner, net)


def lp_steps(total_steps: int, lp_fraction: float) -> int:
    """K, the number of linear-probe steps of LP-FT: round(fraction * T)."""
    return int(round(lp_fraction * total_steps))


def lp_ft_phases(model: nn.Module, total_steps: int, lp_fraction: float) -> Callable[[int], None]:
    """Before step t: the image tower's trainable weights are frozen for t <= K (the probe) and train after
    (fine-tuning from the probed head). A pure function of t, so a resumed run is in the right phase."""
    tower = [p for p in model.visual.parameters() if p.requires_grad]
    k = lp_steps(total_steps, lp_fraction)

    def before_step(step: int) -> None:
        for p in tower:
            p.requires_grad_(step > k)
    return before_step


@dataclass(frozen=True)
class Tuning(Entry):
    """What trains (--tuning). ``head(backbone, class_names, templates, **params)`` builds the head over the
    training classes (None: the loss's own); ``trains(model, head, trainable)`` sets and returns the weights
    that train; ``phases(model, total_steps, **params)`` returns a hook run before each step (None: none);
    ``single_process``: refused with several processes; ``needs_head``: the loss's head it requires;
    ``class_texts``: its exported model scores classes by their texts (False: by learned prompts, which WiSE-FT's
    interpolation of the towers does not carry)."""

    head: Optional[Callable[..., nn.Module]] = None
    trains: Callable[..., list] = image_tower
    phases: Optional[Callable[..., Callable[[int], None]]] = None
    single_process: bool = False
    needs_head: Optional[str] = None
    class_texts: bool = True
    uses_trainable: bool = True  # the image tower trains, so --trainable applies


TUNINGS: Registry[Tuning] = Registry("tuning", "tuning", "--tuning")

LP_FRACTION = Param("lp_fraction", 0.5, "fraction of --steps in LP-FT's linear-probe phase, where only the linear "
                                        "head trains (round(fraction * steps) steps); fine-tuning of the image tower "
                                        "and the head follows, under the same learning-rate schedule.",
                    within=Range(0, 1, hi_open=True, name="fraction"), label="LP fraction of the steps")

TUNINGS.add(Tuning("image", "the image tower (--trainable) and the head; the class texts are encoded once by the "
                            "frozen text tower (the paper)"))
TUNINGS.add(Tuning("lp-ft", "LP-FT: the linear head alone for the first --lp-fraction of the steps, then the image "
                            "tower with it (Kumar et al. 2022; needs --loss linear)", (LP_FRACTION,),
                   phases=lambda model, total, lp_fraction: lp_ft_phases(model, total, lp_fraction),
                   needs_head="linear"))
TUNINGS.add(Tuning("both-towers", "the image and the text tower; the class prompts are encoded at every step "
                                  "(FLYP, Goyal et al. 2023); one process",
                   head=lambda backbone, names, templates, **_: TowerTextHead(backbone.model, backbone.tokenizer,
                                                                              names, templates),
                   trains=both_towers, single_process=True))

N_CTX = Param("n_ctx", 0, "M, the number of learned context tokens: 0 takes the token count of --ctx-init; with an "
                          "empty --ctx-init, CoOp's 16 (another value with a phrase is an error).",
              within=Range(0, 77, name="M"), label="M (context tokens)", variant=False)
CTX_INIT = Param("ctx_init", "a photo of a", "the phrase the context vectors start from (its token embeddings); "
                                             "empty: random, std 0.02 (CoOp; CoCoOp and base-to-new: 'a photo of a').",
                 label="context init")
CLASS_SPECIFIC = Param("class_specific", False, "one context per class (CoOp's CSC) instead of one shared; it cannot "
                                                "score classes it was not trained on (base-to-new's new classes).",
                       label="class-specific context")
CLASS_POSITION = Param("class_position", "end", "where the class name sits among the context tokens (CoOp).",
                       choices=POSITIONS, label="class token position")
TUNINGS.add(Tuning("coop", "CoOp: learned context vectors before the class names, both towers frozen (Zhou et al. "
                           "2022)", (N_CTX, CTX_INIT, CLASS_SPECIFIC, CLASS_POSITION),
                   head=lambda backbone, names, templates, **params: prompt_head(backbone, names, **params),
                   trains=prompts_only, class_texts=False, uses_trainable=False))
TUNINGS.add(Tuning("cocoop", "CoCoOp: CoOp plus a meta-net that shifts every context token by a vector made from the "
                             "image (Zhou et al. 2022)", (N_CTX, CTX_INIT),
                   head=lambda backbone, names, templates, **params: prompt_head(backbone, names, meta_net=True,
                                                                                **params),
                   trains=prompts_only, class_texts=False, uses_trainable=False))


def check_tuning(name: str, loss_head: str) -> None:
    """A tuning whose phases need a kind of head refuses a loss with another."""
    need = TUNINGS[name].needs_head
    if need is not None and need != loss_head:
        raise ConfigError(f"--tuning {name}: needs a loss on a {need} head (e.g. --loss linear); --loss scores the "
                          f"{loss_head} head")


def build_head(name: str, backbone: Backbone, class_names: Sequence[str], templates: Sequence[str],
               **params) -> Optional[nn.Module]:
    """The tuning's own head over ``class_names`` (None: the loss's)."""
    entry = TUNINGS[name]
    args = TUNINGS.arguments(name, params)
    return entry.head(backbone, class_names, templates, **args) if entry.head is not None else None


def build_phases(name: str, model: nn.Module, total_steps: int, **params) -> Callable[[int], None]:
    """The hook run before each step (a no-op for a tuning without phases); call after ``trains``."""
    entry = TUNINGS[name]
    if entry.phases is None:
        return lambda step: None
    return entry.phases(model, total_steps, **TUNINGS.arguments(name, params))
