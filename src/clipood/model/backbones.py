"""Backbones through open_clip: one loading path for hub tags, local files and tiny configs.

``load_backbone`` resolves ``--arch``/``--pretrained`` the way open_clip does
(``create_model_and_transforms``), after registering the JSON configs bundled in
``clipood/model/configs`` (tiny models for tests, built from a config, random weights).
A run's exported model is an open_clip ``local-dir:`` folder, so it loads through the
same call, in clipood or in plain open_clip.

clipood's own pretrained tags (``--arch clipood-emoji-s --pretrained emoji``) go through
that call too: ``resolve_pretrained`` turns the tag into the weights file, shipped inside
the package (``model/pretrained/<arch>/<tag>.safetensors``) or made by ``clipood pretrain
--install-as TAG`` into ``$CLIPOOD_CACHE/pretrained/<arch>/<tag>/``, and open_clip loads
that file as it loads any checkpoint path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import open_clip
import torch

from safetensors.torch import save_file

from ..cache import cache_root
from ..errors import ModelError
from ..io import atomic_path, write_json

BUNDLED_CONFIGS = Path(__file__).parent / "configs"
open_clip.add_model_config(BUNDLED_CONFIGS)
PACKAGED_WEIGHTS = Path(__file__).parent / "pretrained"

EXPORT_CONFIG = "open_clip_config.json"
EXPORT_WEIGHTS = "open_clip_model.safetensors"


@dataclass(frozen=True)
class ClipoodTag:
    """A pretrained tag that clipood knows how to make (docs/pretrained.md)."""

    about: str            # what the weights are trained on
    recipe_template: str  # the commands that make them; {emoji_holdout} is the emoji benchmark's held-out domain

    @property
    def recipe(self) -> str:
        from ..data.emoji import DEFAULT_HOLDOUT  # one source for the held-out domain the weights must not see
        return self.recipe_template.format(emoji_holdout=DEFAULT_HOLDOUT)


CLIPOOD_TAGS: dict[tuple[str, str], ClipoodTag] = {
    ("clipood-emoji-s", "emoji"): ClipoodTag(
        about="CLIP's contrastive loss on the emoji pretraining set (one plain image per emoji and designer, "
              "captioned with its name and CLDR keywords), the benchmark's held-out designer excluded",
        recipe_template="clipood data build emoji --pretrain-set && clipood pretrain --csv "
                        "~/.cache/clipood/datasets/emoji-pretrain/captions.csv --exclude-domain {emoji_holdout} "
                        "--install-as emoji",
    ),
}


def installed_weights(arch: str, tag: str) -> Path:
    """Where ``clipood pretrain --install-as TAG`` puts the weights of ARCH."""
    return cache_root() / "pretrained" / arch / tag / EXPORT_WEIGHTS


def clipood_tags(arch: str) -> list[str]:
    """clipood's tags for ARCH: the known recipes, the shipped files and the installed ones."""
    tags = {t for a, t in CLIPOOD_TAGS if a == arch}
    tags |= {p.stem for p in (PACKAGED_WEIGHTS / arch).glob("*.safetensors")}
    tags |= {p.parent.name for p in (cache_root() / "pretrained" / arch).glob(f"*/{EXPORT_WEIGHTS}")}
    return sorted(tags)


def resolve_pretrained(arch: str, pretrained: Optional[str]) -> Optional[str]:
    """What open_clip gets as ``pretrained``: clipood tags become their weights file, the rest passes."""
    if pretrained is None or pretrained.lower() in ("", "none"):
        return None
    if arch.startswith(("local-dir:", "hf-hub:")) or os.path.isfile(pretrained):
        return pretrained
    name = arch.replace("/", "-")
    if pretrained in open_clip.list_pretrained_tags_by_model(name):
        return pretrained
    for path in (PACKAGED_WEIGHTS / name / f"{pretrained}.safetensors", installed_weights(name, pretrained)):
        if path.is_file():
            return str(path)
    known = CLIPOOD_TAGS.get((name, pretrained))
    if known is not None:
        raise ModelError(f"--pretrained {pretrained}: the '{pretrained}' weights of {name} are not built here "
                         f"(no {installed_weights(name, pretrained)}); make them once with: {known.recipe} "
                         f"(see docs/pretrained.md)")
    return pretrained


@dataclass
class Backbone:
    """An open_clip model with what clipood needs around it."""

    model: torch.nn.Module
    tokenizer: Callable
    preprocess_val: Callable
    preprocess_cfg: dict
    model_cfg: dict
    arch: str
    pretrained: Optional[str]


def list_architectures() -> list[str]:
    return open_clip.list_models()


def _model_cfg(arch: str) -> Optional[dict]:
    if arch.startswith("local-dir:"):
        path = Path(arch[len("local-dir:"):]) / EXPORT_CONFIG
        if not path.is_file():
            raise ModelError(f"--arch: {arch}: no {EXPORT_CONFIG} in that folder; point at a folder "
                             f"exported by clipood or open_clip")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelError(f"--arch: {path} is not valid JSON ({e})") from None
        if "model_cfg" not in data:
            raise ModelError(f"--arch: {path} has no 'model_cfg' entry")
        return data["model_cfg"]
    return open_clip.get_model_config(arch.replace("/", "-"))


def check_arch(arch: str, pretrained: Optional[str]) -> None:
    """Fail fast, with the known names, on an unknown architecture or pretrained tag."""
    if pretrained is not None and pretrained.lower() in ("", "none"):
        pretrained = None
    if arch.startswith(("local-dir:", "hf-hub:")):
        return
    name = arch.replace("/", "-")
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if name.lower()[:5] in m.lower()][:8]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise ModelError(f"--arch: unknown architecture '{arch}'{hint}; run 'clipood models' to list them, "
                         f"or pass local-dir:PATH")
    pretrained = resolve_pretrained(arch, pretrained)
    if pretrained and not os.path.isfile(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(name) + clipood_tags(name)
        if pretrained not in tags:
            known = ", ".join(tags) if tags else "none (use a local checkpoint file or 'none')"
            raise ModelError(f"--pretrained: '{pretrained}' is neither a file nor a known tag for {arch}; "
                             f"known tags: {known}")


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def load_backbone(arch: str, pretrained: Optional[str] = None, *, device: str | torch.device = "cpu",
                  cache_dir: Optional[str] = None) -> Backbone:
    """Create an open_clip model (fp32 master weights) with its eval transform and tokenizer."""
    if pretrained is not None and pretrained.lower() in ("", "none"):
        pretrained = None
    check_arch(arch, pretrained)
    try:
        with _quiet_root_logger():  # open_clip warns (root logger) on random-init tiny models
            model, _, preprocess_val = open_clip.create_model_and_transforms(
                arch, pretrained=resolve_pretrained(arch, pretrained), device=device, cache_dir=cache_dir, precision="fp32",
            )
        tokenizer = open_clip.get_tokenizer(arch)
    except ModelError:
        raise
    except Exception as e:  # open_clip raises RuntimeError/ValueError/OSError for all of these
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        where = f"{arch} with weights '{pretrained}'" if pretrained else arch
        hint = ("; when offline, pass a local checkpoint file with --pretrained PATH or a folder "
                "with --arch local-dir:PATH") if pretrained and not os.path.isfile(pretrained) else ""
        raise ModelError(f"could not load {where}: {first[:300]}{hint}") from None
    return Backbone(
        model=model,
        tokenizer=tokenizer,
        preprocess_val=preprocess_val,
        preprocess_cfg=dict(open_clip.get_model_preprocess_cfg(model)),
        model_cfg=_model_cfg(arch) or {},
        arch=arch,
        pretrained=pretrained,
    )


def set_trainable(model: torch.nn.Module, trainable: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the image tower (or its last N groups); return what trains."""
    model.requires_grad_(False)
    visual = model.visual
    if trainable == "all":
        visual.requires_grad_(True)
    elif trainable.startswith("last:"):
        visual.requires_grad_(True)
        visual.lock(unlocked_groups=int(trainable[5:]))
    else:
        raise ValueError(f"unknown trainable spec {trainable!r}")
    return [p for p in visual.parameters() if p.requires_grad]


def export_config(backbone: Backbone) -> dict[str, Any]:
    """The open_clip_config.json of an exported model (model and preprocessing)."""
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in backbone.preprocess_cfg.items()}
    return {"model_cfg": backbone.model_cfg, "preprocess_cfg": pre}


def save_open_clip_folder(backbone: Backbone, out_dir: Path) -> None:
    """Write the backbone as an open_clip ``local-dir:`` folder: fp32 safetensors + open_clip_config.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in backbone.model.state_dict().items()}
    with atomic_path(out_dir / EXPORT_WEIGHTS) as tmp:
        save_file(state, str(tmp))
    write_json(out_dir / EXPORT_CONFIG, export_config(backbone))
