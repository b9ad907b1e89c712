"""What ``--arch``/``--pretrained`` load, decided before anything is built: an open_clip tag, a
checkpoint file, an open_clip ``local-dir:`` folder (a run's export, or a clipood tag made by
``clipood pretrain --install-as``), the towers shipped in packages, or random weights.

``--pretrained auto`` (the default) means: the folder's own weights for ``local-dir:``,
``openai`` where open_clip has it, else the architecture's clipood tag. A folder without
weights is an error; ``--pretrained none`` is the one way to ask for random weights. A
known clipood tag that is not built yet fails with the command that builds it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import open_clip

from ..cache import cache_root
from ..errors import ModelError
from ..io import first_difference
from . import towers as shipped

__all__ = ["AUTO", "CLIPOOD_TAGS", "ClipoodTag", "DEFAULT_TAGS", "EXPORT_CONFIG", "EXPORT_WEIGHTS", "PAPER_TAG_PREFIX",
           "RANDOM", "Weights", "architecture_difference", "check_arch", "clipood_tags", "installed_dir",
           "installed_weights", "known_tag", "normalise_pretrained", "read_folder_config", "resolve_weights",
           "tag_quick_gelu", "weights_file"]

PACKAGED_WEIGHTS = Path(__file__).parent / "pretrained"
EXPORT_CONFIG = "open_clip_config.json"
EXPORT_WEIGHTS = "open_clip_model.safetensors"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                "open_clip_pytorch_model.pth")
AUTO, RANDOM = "auto", "none"


@dataclass(frozen=True)
class ClipoodTag:
    """A pretrained tag that clipood knows how to make (docs/pretrained.md)."""

    about: str   # what the weights are trained on
    recipe: str  # the commands that make them


CLIPOOD_TAGS: dict[tuple[str, str], ClipoodTag] = {
    ("clipood-emoji-s", "emoji"): ClipoodTag(
        about="CLIP's contrastive loss from scratch on the emoji pretraining set (one plain image per emoji and "
              "designer, captioned with its name and CLDR keywords), the benchmark's held-out designer excluded",
        recipe="clipood data build emoji --pretrain-set && clipood pretrain --csv "
               "~/.cache/clipood/datasets/emoji-pretrain/captions.csv --exclude-domain openmoji --install-as emoji",
    ),
    ("clipood-lite0-minilm", "emoji"): ClipoodTag(
        about="the packaged towers (ImageNet EfficientNet-Lite0, all-MiniLM-L6-v2), both locked, with the image "
              "projection and the logit scale aligned (LiT) on two emoji designers (noto, twemoji) that the demo "
              "neither fine-tunes nor tests on",
        recipe="clipood demo --regime disjoint --align-only (it aligns the towers when the tag is missing; the "
               "commands: docs/pretrained.md)",
    ),
}
PAPER_TAG_PREFIX = "emoji-without-"  # the demo's paper regime: aligned on every emoji designer but the one named


def known_tag(name: str, tag: str) -> Optional[ClipoodTag]:
    """A tag clipood knows how to make: the registry's, or the paper regime's alignment without one designer."""
    if (name, tag) in CLIPOOD_TAGS:
        return CLIPOOD_TAGS[(name, tag)]
    if name == "clipood-lite0-minilm" and tag.startswith(PAPER_TAG_PREFIX):
        held = tag[len(PAPER_TAG_PREFIX):]
        return ClipoodTag(
            about=f"the packaged towers, both locked, with the image projection and the logit scale aligned (LiT) on "
                  f"every emoji designer but {held}",
            recipe=f"clipood demo --holdout-domain {held} --align-only")
    return None
# --pretrained auto for architectures open_clip has no 'openai' weights for
DEFAULT_TAGS = {"clipood-emoji-s": "emoji", "clipood-lite0-minilm": "emoji"}


@dataclass(frozen=True)
class Weights:
    """What an (--arch, --pretrained) pair loads, decided before anything is built."""

    kind: str                       # 'tag' | 'file' | 'folder' | 'towers' | 'random'
    model_name: str                 # what open_clip.create_model gets
    pretrained: Optional[str]       # ... and as pretrained (a tag or a file), or None
    folder: Optional[Path] = None   # a local-dir folder
    about: str = ""                 # one line for records and the console
    # the activation the weights were trained with, where they say it (an open_clip tag's pretrained config,
    # a folder's open_clip_config.json); None where they do not (a bare checkpoint file, towers, random)
    quick_gelu: Optional[bool] = None


def installed_dir(arch: str, tag: str) -> Path:
    """Where ``clipood pretrain --install-as TAG`` puts the model folder of ARCH."""
    return cache_root() / "pretrained" / arch / tag


def installed_weights(arch: str, tag: str) -> Path:
    return installed_dir(arch, tag) / EXPORT_WEIGHTS


def clipood_tags(arch: str) -> list[str]:
    """clipood's tags for ARCH: the known recipes, shipped towers, the shipped files and the installed ones."""
    tags = {t for a, t in CLIPOOD_TAGS if a == arch}
    if arch in shipped.SHIPPED:
        tags.add(shipped.TOWERS_TAG)
    tags |= {p.stem for p in (PACKAGED_WEIGHTS / arch).glob("*.safetensors")}
    tags |= {p.parent.name for p in (cache_root() / "pretrained" / arch).glob(f"*/{EXPORT_WEIGHTS}")}
    return sorted(tags)


def normalise_pretrained(pretrained: Optional[str]) -> str:
    if isinstance(pretrained, str) and not pretrained.strip():  # 'none' is the one way to ask for random weights
        raise ModelError("--pretrained: the value is empty; give a tag, a checkpoint file, 'auto', or 'none' for "
                         "random weights")
    if pretrained is None or pretrained.strip().lower() in ("none", "null", "random"):
        return RANDOM
    return pretrained.strip()


def weights_file(folder: Path) -> Optional[Path]:
    """The weights file of an open_clip folder: the first of open_clip's own names (WEIGHT_FILES) it holds."""
    return next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)


def read_folder_config(folder: Path, flag: str = "--arch") -> dict:
    path = folder / EXPORT_CONFIG
    if not folder.is_dir():
        raise ModelError(f"{flag}: folder not found: {folder}")
    if not path.is_file():
        raise ModelError(f"{flag}: no {EXPORT_CONFIG} in {folder}; point at a folder exported by clipood or open_clip")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{flag}: {path} is not valid JSON ({e}); re-export the model") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
        raise ModelError(f"{flag}: {path} has no 'model_cfg' mapping; it is not an open_clip model folder")
    return data


def _folder(folder: Path, pretrained: str, what: str) -> Weights:
    read_folder_config(folder)
    if pretrained == RANDOM:
        return Weights("random", f"local-dir:{folder}", None, folder,
                       f"random weights (--pretrained none) in the architecture of {folder}")
    weights = weights_file(folder)
    if weights is None:
        raise ModelError(f"--arch: {folder} holds no weights (one of {', '.join(WEIGHT_FILES)}); copy them there, "
                         f"or pass --pretrained none to start from random weights on purpose")
    quick_gelu = bool(read_folder_config(folder)["model_cfg"].get("quick_gelu", False))
    return Weights("folder", f"local-dir:{folder}", None, folder, f"{what} ({weights})", quick_gelu)


def tag_quick_gelu(name: str, tag: str) -> bool:
    """Whether open_clip's pretrained tag was trained with QuickGELU (its pretrained config says; OpenAI's: yes)."""
    return bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))


_NOT_ARCHITECTURE = frozenset({"hf_model_name", "hf_tokenizer_name", "hf_model_pretrained", "timm_model_pretrained"})


def architecture_difference(a: dict, b: dict, here: str = "in --arch") -> Optional[str]:
    """'key is x there, y in --arch' (``here``) for the first architecture setting two model configs differ in
    (where a Hugging Face tower's files are and whether towers were pretrained are no architecture setting)."""
    found = first_difference(a, b, _NOT_ARCHITECTURE)
    return None if found is None else f"{found[0]} is {found[1]!r} there, {found[2]!r} {here}"


def _folder_of_arch(name: str, folder: Path) -> Weights:
    """--pretrained FOLDER with --arch NAME: the folder's weights, when the folder is a model of NAME."""
    if not folder.is_dir():
        raise ModelError(f"--pretrained: {folder} is neither a file, a model folder nor a tag of {name}")
    diff = architecture_difference(read_folder_config(folder, "--pretrained")["model_cfg"],
                             open_clip.get_model_config(name) or {})
    if diff:
        raise ModelError(f"--pretrained {folder}: a model folder of another architecture than --arch {name} ({diff});"
                         f" pass --arch local-dir:{folder} to use it as it is, or weights made for {name}")
    return _folder(folder, AUTO, f"the weights of {folder}")


def _unknown_arch(arch: str) -> ModelError:
    name = arch.replace("/", "-")
    close = [m for m in open_clip.list_models() if name.lower()[:5] in m.lower()][:8]
    hint = f" (similar: {', '.join(close)})" if close else ""
    return ModelError(f"--arch: unknown architecture '{arch}'{hint}; run 'clipood models' to list them, "
                      f"or pass local-dir:PATH")


def resolve_weights(arch: str, pretrained: Optional[str] = AUTO) -> Weights:
    """What (--arch, --pretrained) load; one ModelError line for anything that cannot be loaded."""
    pretrained = normalise_pretrained(pretrained)
    if arch.startswith("local-dir:"):
        if pretrained not in (AUTO, RANDOM):
            raise ModelError(f"--pretrained {pretrained}: does not apply with --arch {arch}, which loads the "
                             f"folder's own weights; drop --pretrained (or pass 'none' for random weights)")
        return _folder(Path(arch[len("local-dir:"):]), pretrained, "the folder's weights")
    if arch.startswith("hf-hub:"):
        if pretrained not in (AUTO, RANDOM):
            raise ModelError(f"--pretrained {pretrained}: does not apply with --arch {arch}, which loads the "
                             f"repository's weights; drop --pretrained")
        if pretrained == RANDOM:
            raise ModelError(f"--pretrained none: not supported with --arch {arch}; download the repository and "
                             f"pass --arch local-dir:PATH --pretrained none")
        return Weights("tag", arch, None, about=f"the weights of {arch}")
    name = arch.replace("/", "-")
    if name not in open_clip.list_models():
        raise _unknown_arch(arch)
    open_clip_tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained == AUTO:
        if "openai" in open_clip_tags:
            pretrained = "openai"
        elif name in DEFAULT_TAGS:
            pretrained = DEFAULT_TAGS[name]
        else:
            known = ", ".join(open_clip_tags + clipood_tags(name)) or "none"
            raise ModelError(f"--pretrained: {arch} has no default weights; pass a tag (known: {known}), a "
                             f"checkpoint file, or 'none' for random weights")
    if pretrained == RANDOM:
        return Weights("random", name, None, about=f"random weights (--pretrained none) of {name}")
    if pretrained in open_clip_tags:
        return Weights("tag", name, pretrained, about=f"open_clip's '{pretrained}' weights of {name}",
                       quick_gelu=tag_quick_gelu(name, pretrained))
    if os.path.isfile(pretrained):
        return Weights("file", name, pretrained, about=f"{name} weights from {pretrained}")
    if pretrained == shipped.TOWERS_TAG and name in shipped.SHIPPED:
        return Weights("towers", name, None, about=shipped.SHIPPED[name].describe())
    if os.sep in pretrained or pretrained.startswith(("~", ".")):
        return _folder_of_arch(name, Path(pretrained).expanduser())  # a path, never joined onto the tag folder
    installed = installed_dir(name, pretrained)
    if (installed / EXPORT_CONFIG).is_file() and weights_file(installed):
        return _folder(installed, AUTO, f"clipood's '{pretrained}' weights of {name}")
    for path in (PACKAGED_WEIGHTS / name / f"{pretrained}.safetensors", installed / EXPORT_WEIGHTS):
        if path.is_file():
            return Weights("file", name, str(path), about=f"clipood's '{pretrained}' weights of {name} ({path})")
    known = known_tag(name, pretrained)
    if known is not None:
        raise ModelError(f"--pretrained {pretrained}: the '{pretrained}' weights of {name} are not built here "
                         f"(nothing in {installed}); make them once with: {known.recipe}")
    tags = open_clip_tags + clipood_tags(name)
    hint = ", ".join(tags) if tags else "none (use a local checkpoint file or 'none')"
    raise ModelError(f"--pretrained: '{pretrained}' is neither a file nor a known tag for {arch}; known tags: {hint}")


def check_arch(arch: str, pretrained: Optional[str]) -> Weights:
    """Fail fast, with the known names, on an unknown architecture, tag, folder or file."""
    return resolve_weights(arch, pretrained)


