"""Backbones through open_clip: one loading path for hub tags, local files and tiny configs.

``load_backbone`` resolves ``--arch``/``--pretrained`` the way open_clip does
(``create_model_and_transforms``), after registering the JSON configs bundled in
``clipood/model/configs`` (tiny models for tests, built from a config, random weights).
A run's exported model is an open_clip ``local-dir:`` folder, so it loads through the
same call, in clipood or in plain open_clip.
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

from ..errors import ModelError

BUNDLED_CONFIGS = Path(__file__).parent / "configs"
open_clip.add_model_config(BUNDLED_CONFIGS)

EXPORT_CONFIG = "open_clip_config.json"
EXPORT_WEIGHTS = "open_clip_model.safetensors"


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
    if pretrained and not os.path.isfile(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(name)
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
                arch, pretrained=pretrained, device=device, cache_dir=cache_dir, precision="fp32",
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
