"""Locked-image tuning (LiT, Zhai et al., 2022): align pretrained towers by training what sits on top.

``--lock-image`` freezes the image trunk (open_clip's ``lock_image_tower``; its BatchNorm
statistics too, the tower runs in eval mode), ``--lock-text`` the text transformer
(``lock_text_tower``); the projections and the logit scale still train. With both towers
fully locked nothing below the projections changes, so each image and caption is encoded
once (``encode_frozen``) and training runs on the cached features: CLIP's loss on
``proj(cached)``, which is exactly the loss of the whole model on the eval preprocessing
(tested), in seconds instead of minutes.

The cache lives in ``$CLIPOOD_CACHE/features/`` under a key made of what decides the
features: every image file's bytes, the preprocessing, every caption's tokens and the
frozen towers' own weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..cache import cache_root
from ..console import progress_bar
from ..data.loading import ImageDataset, collate
from ..errors import ConfigError, DataError
from ..evaluation import input_format
from ..io import atomic_path
from ..model.fusion import fold_batchnorm
from ..training.speed import is_convolutional

__all__ = ["FrozenFeatures", "cache_keys", "cacheable", "frozen_features", "frozen_image", "frozen_text", "image_head",
           "lock_towers", "projected", "set_train_mode", "text_head"]


def lock_towers(model: nn.Module, lock_image: bool, unlocked_groups: int, lock_text: bool) -> None:
    """open_clip's LiT locks; the BatchNorm statistics of a locked image trunk stay as they are."""
    if lock_image:
        model.lock_image_tower(unlocked_groups=unlocked_groups, freeze_bn_stats=False)
    if lock_text:
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)


def set_train_mode(model: nn.Module, lock_image: bool) -> None:
    """model.train(), except a locked image tower, which runs as at inference (LiT)."""
    model.train()
    if lock_image:
        model.visual.eval()


# ------------------------------------------------------------------ frozen part / head of each tower


def _is_timm(visual: nn.Module) -> bool:
    return hasattr(visual, "trunk") and hasattr(visual, "head")


def _is_hf(text: Optional[nn.Module]) -> bool:
    return text is not None and hasattr(text, "transformer") and hasattr(text, "pooler") and hasattr(text, "proj")


def cacheable(model: nn.Module) -> bool:
    """Towers whose locked part ends before a separate projection: timm image and Hugging Face text towers."""
    return _is_timm(model.visual) and _is_hf(getattr(model, "text", None))


def frozen_image(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model.visual.trunk(images)             # timm: pooled features, before open_clip's head


def image_head(model: nn.Module, frozen: torch.Tensor) -> torch.Tensor:
    return model.visual.head(frozen)


def frozen_text(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    text = model.text                               # open_clip's HFTextEncoder.forward, up to the pooler
    mask = (tokens != text.config.pad_token_id).long()
    return text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)


def text_head(model: nn.Module, frozen: torch.Tensor) -> torch.Tensor:
    return model.text.proj(frozen)


def projected(model: nn.Module, image_frozen: torch.Tensor, text_frozen: torch.Tensor):
    """(image features, text features, scale) from frozen features, as ``model(images, texts)`` returns them."""
    img = F.normalize(image_head(model, image_frozen), dim=-1)
    txt = F.normalize(text_head(model, text_frozen), dim=-1)
    return img, txt, model.logit_scale.exp()


# ------------------------------------------------------------------ the cache


@dataclass
class FrozenFeatures:
    """Frozen-tower features of every row of the caption table (rows that could not be read: NaN)."""

    image: torch.Tensor   # (N, D_image)
    text: torch.Tensor    # (N, D_text)
    files: dict           # where they are cached

    def readable(self, rows: Sequence[int]) -> list[int]:
        ok = ~torch.isnan(self.image[torch.as_tensor(list(rows), dtype=torch.long)]).any(dim=1)
        return [r for r, good in zip(rows, ok.tolist()) if good]


def _tensor_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _files_digest(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode() + b"\0")
        try:
            h.update(hashlib.sha256(Path(p).read_bytes()).digest())
        except OSError as e:
            raise DataError(f"{p}: cannot be read for the feature cache ({e.strerror})") from None
    return h.hexdigest()


def cache_keys(model: nn.Module, paths: Sequence[str], tokens: torch.Tensor, preprocess_cfg: dict) -> dict:
    """One key per tower: changing any image, caption, preprocessing or frozen weight makes new features."""
    pre = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in preprocess_cfg.items()}, sort_keys=True)
    image = hashlib.sha256(f"{_files_digest(paths)}|{pre}|{_tensor_digest(model.visual.trunk)}".encode())
    text = hashlib.sha256(tokens.numpy().tobytes() + _tensor_digest(model.text.transformer).encode())
    return {"image": image.hexdigest()[:32], "text": text.hexdigest()[:32]}


def _load(path: Path, rows: int) -> Optional[torch.Tensor]:
    if not path.is_file():
        return None
    try:
        t = load_file(str(path))["features"]
    except Exception:  # a torn or foreign file: recompute
        return None
    return t if t.shape[0] == rows else None


def _save(path: Path, features: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        save_file({"features": features.contiguous()}, str(tmp))


def _to_uint8(img) -> torch.Tensor:
    """A PIL image as a (C, H, W) uint8 tensor: ToTensor without its division, left to the batch."""
    import numpy as np
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def _batched_normalize(transform: Callable):
    """open_clip's eval preprocessing split at its last two steps (ToTensor, Normalize), which then run once per
    batch: the same arithmetic (x / 255, then (x - mean) / std per channel), so the same values, without two small
    tensor operations per image. None when the transform does not end that way."""
    from torchvision import transforms as T
    steps = list(getattr(transform, "transforms", []))
    if len(steps) < 2 or not isinstance(steps[-1], T.Normalize) or \
            type(steps[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
        return None
    norm = steps[-1]
    mean = torch.as_tensor(norm.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.as_tensor(norm.std, dtype=torch.float32).reshape(1, -1, 1, 1)
    return T.Compose(steps[:-2] + [_to_uint8]), lambda x: x.float().div_(255).sub_(mean).div_(std)


@torch.no_grad()
def _encode_images(model, table, transform, device, autocast_dtype, workers, on_bad, progress,
                   fast: bool = True) -> torch.Tensor:
    """Every row's frozen image features. ``fast``: the locked trunk with its BatchNorms folded into its
    convolutions (``model.fusion``) and the normalisation run per batch; the same features to float rounding
    (tested), about 1.5x sooner on a CPU for EfficientNet-Lite0 (perf/bench_alignment.py)."""
    split = _batched_normalize(transform) if fast else None
    per_image, per_batch = split if split is not None else (transform, lambda x: x)
    loader = torch.utils.data.DataLoader(ImageDataset(table, per_image), batch_size=128, shuffle=False,
                                         num_workers=workers, collate_fn=collate)
    if is_convolutional(model.visual):  # 3x faster on CPU for EfficientNet (docs/performance.md); same values
        model.visual.to(memory_format=torch.channels_last)
    fmt = input_format(model.visual)
    trunk = model.visual.trunk
    out = None
    bar = progress_bar(total=len(table), desc="image features (once)", unit="img", disable=not progress, leave=False)
    for images, idx, bad in loader:
        on_bad(bad)
        if images is not None:
            images = per_batch(images).to(device).contiguous(memory_format=fmt)
            if fast and trunk is model.visual.trunk and is_convolutional(model.visual):
                trunk, _ = fold_batchnorm(model.visual.trunk, images[:2])
                trunk = trunk.to(memory_format=fmt)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                f = trunk(images).float().cpu()
            if out is None:
                out = torch.full((len(table), f.shape[1]), float("nan"))
            out[idx] = f
        bar.update(len(idx) + len(bad))
    bar.close()
    if out is None:
        raise DataError(f"{table.csv}: no image of the table could be read")
    return out


@torch.no_grad()
def _encode_texts(model, tokens, device, autocast_dtype, progress) -> torch.Tensor:
    unique, inverse = torch.unique(tokens, dim=0, return_inverse=True)  # captions repeat across designers
    chunks = []
    for i in progress_bar(range(0, len(unique), 256), desc="text features (once)", disable=not progress, leave=False):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            chunks.append(frozen_text(model, unique[i:i + 256].to(device)).float().cpu())
    return torch.cat(chunks)[inverse]


def frozen_features(model: nn.Module, table, tokens: torch.Tensor, transform: Callable, preprocess_cfg: dict, *,
                    device: torch.device, autocast_dtype=None, workers: int = 0,
                    on_bad: Callable[[list], None] = lambda bad: None, progress: bool = True) -> FrozenFeatures:
    """Every row's frozen image and text features, from the cache or computed once and cached."""
    if not cacheable(model):
        raise ConfigError(f"--feature-cache: needs a timm image tower and a Hugging Face text tower (e.g. "
                          f"clipood-lite0-minilm), not {type(model.visual).__name__}; pass --feature-cache off")
    keys = cache_keys(model, table.paths, tokens, preprocess_cfg)
    folder = cache_root() / "features"
    files = {tower: folder / f"{tower}-{key}.safetensors" for tower, key in keys.items()}
    was_training = model.training
    model.eval()
    image = _load(files["image"], len(table))
    if image is None:
        image = _encode_images(model, table, transform, device, autocast_dtype, workers, on_bad, progress)
        _save(files["image"], image)
    else:  # the cached rows of unreadable images are NaN: they meet the --bad-images policy again
        on_bad([(int(i), "unreadable when its features were cached")
                for i in torch.isnan(image).any(dim=1).nonzero().flatten()])
    text = _load(files["text"], len(table))
    if text is None:
        text = _encode_texts(model, tokens, device, autocast_dtype, progress)
        _save(files["text"], text)
    model.train(was_training)
    return FrozenFeatures(image=image, text=text, files={k: str(v) for k, v in files.items()})
