"""What a run trains (--tuning): which weights, with which head, in which phases.

* image (the paper): the image tower (--trainable) and the head; the class texts are encoded
  once by the frozen text tower.
* lp-ft (Kumar et al., ICLR 2022): a linear probe, then full fine-tuning from it: for the
  first fraction of the steps only the linear head trains, then the image tower with it.
* both-towers (FLYP, Goyal et al., CVPR 2023): the image and the text tower train; the
  class prompts are encoded at every step, with gradients (``model.heads.TowerTextHead``).

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
    """The image tower's --trainable parameters and the whole text tower (not the logit scale)."""
    params = set_trainable(model, trainable)
    text = text_parameters(model)
    for p in text:
        p.requires_grad_(True)
    return unique(params + text + [p for p in head.parameters() if p.requires_grad])


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
    ``single_process``: refused with several processes; ``needs_head``: the loss's head it requires."""

    head: Optional[Callable[..., nn.Module]] = None
    trains: Callable[..., list] = image_tower
    phases: Optional[Callable[..., Callable[[int], None]]] = None
    single_process: bool = False
    needs_head: Optional[str] = None


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
