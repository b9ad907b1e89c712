"""Learned prompts on a frozen text tower: CoOp and CoCoOp.

CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022) replaces the
words of a prompt in front of each class name by M learned context vectors; the frozen text
tower runs on the resulting token embeddings. CoCoOp (Zhou et al., "Conditional Prompt
Learning for Vision-Language Models", CVPR 2022) adds a small meta-net whose output, one
vector per image, shifts every context token, so the classifier depends on the image.

``text_tower`` maps (token ids, token embeddings) to text features exactly as the tower's own
``encode_text`` does when the embeddings are its word embeddings, for open_clip's text
transformer (``CLIP``, or ``CustomTextCLIP.text``) and for ``HFTextEncoder``. The towers stay
the caller's: the learner neither owns them (its parameters and state dict hold the context
only) nor changes their ``requires_grad`` or train/eval mode; the trainer freezes them and
keeps a Hugging Face tower in ``eval()`` (its dropout), as CoOp trains with a frozen CLIP.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from open_clip.hf_model import HFTextEncoder
from open_clip.transformer import text_global_pool
from torch import nn

from ..errors import ConfigError, ModelError

__all__ = ["POSITIONS", "MetaNet", "PromptHead", "PromptLearner", "TextTower", "text_tower"]

POSITIONS = ("end", "middle", "front")  # where the class name sits among the context tokens (CoOp)
Tokenizer = Callable[[list[str]], torch.Tensor]


@dataclass(eq=False)
class TextTower:
    """A text tower seen as (ids, embeddings) -> features; a plain object, so never a submodule."""

    model: nn.Module
    embed: nn.Embedding  # the word embeddings, the learned context's space
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    pad_id: int


def _open_clip_features(t: nn.Module, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``CLIP.encode_text`` / ``TextTransformer.forward`` after the token lookup."""
    cast = t.transformer.get_cast_dtype()
    x = x.to(cast) + t.positional_embedding[: x.shape[1]].to(cast)
    x = t.ln_final(t.transformer(x, attn_mask=t.attn_mask))
    pool = getattr(t, "text_pool_type", None) or t.pool_type  # CLIP copies the tower's pool_type under this name
    eos = getattr(t, "text_eos_id", getattr(t, "eos_id", None))
    x = text_global_pool(x, ids, pool, eos_token_id=eos)  # EOT found from the ids: the layout keeps its place
    if t.text_projection is None:
        return x
    return t.text_projection(x) if isinstance(t.text_projection, nn.Linear) else x @ t.text_projection


def _hf_features(t: HFTextEncoder, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``HFTextEncoder.forward`` with ``inputs_embeds`` in place of ``input_ids``: same mask, pooler, projection."""
    mask = (ids != t.config.pad_token_id).long()
    out = t.transformer(inputs_embeds=x.to(t.transformer.get_input_embeddings().weight.dtype), attention_mask=mask)
    return t.proj(t.pooler(out, mask))


def text_tower(model: nn.Module) -> TextTower:
    """The text tower of an open_clip ``CLIP`` or ``CustomTextCLIP``, for prompts given as embeddings."""
    text = getattr(model, "text", model)  # CustomTextCLIP keeps it in .text, CLIP on itself
    if isinstance(text, HFTextEncoder):
        return TextTower(model, text.transformer.get_input_embeddings(), partial(_hf_features, text),
                         text.config.pad_token_id)
    if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
        raise ModelError("prompt learning does not support text towers with a class token or a padding mask (CoCa)")
    if not all(hasattr(text, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final")):
        raise ModelError(f"prompt learning needs an open_clip or Hugging Face text tower, not {type(text).__name__}")
    return TextTower(model, text.token_embedding, partial(_open_clip_features, text), getattr(text, "pad_id", 0))


def _layout(position: str, n_special: int, n_ctx: int, name_lens: list[int], length: int) -> torch.Tensor:
    """Per class, the source position of each token, from the 'end' layout "[SOS] ctx name . [EOS] pad"."""
    rows, s, m, half = [], n_special, n_ctx, n_ctx // 2
    for k in name_lens:
        ctx, name = list(range(s, s + m)), list(range(s + m, s + m + k))
        middle = {"end": ctx + name, "front": name + ctx, "middle": ctx[:half] + name + ctx[half:]}[position]
        rows.append(list(range(s)) + middle + list(range(s + m + k, length)))
    return torch.tensor(rows)


class PromptLearner(nn.Module):
    """CoOp's context vectors and the frozen token embeddings around them; forward gives class features.

    ``ctx_init`` (e.g. "a photo of a") starts the context at that phrase's token embeddings and
    sets ``n_ctx`` to its token count; without it the context is random (std 0.02) and the prompt
    text is "X X ... X {name}." (only its layout is used). ``class_specific``: one context per
    class (CoOp's CSC). ``ctx``: an existing context to share (``for_classes``, a loaded one)."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, class_names: Sequence[str], *,
                 n_ctx: Optional[int] = None, ctx_init: str = "", class_specific: bool = False,
                 position: str = "end", ctx: Optional[nn.Parameter] = None):
        super().__init__()
        if position not in POSITIONS:
            raise ConfigError(f"prompt position {position!r} is not one of {', '.join(POSITIONS)}")
        self.tower, self.tokenizer, self.class_names = text_tower(model), tokenizer, list(class_names)
        self.ctx_init, self.class_specific, self.position = ctx_init.strip(), class_specific, position

        def count(texts: list[str]) -> torch.Tensor:  # content tokens of each text: all but specials and padding
            return (tokenizer(texts) != self.tower.pad_id).sum(1) - (tokenizer([""]) != self.tower.pad_id).sum()

        if self.ctx_init:
            phrase, m = self.ctx_init, int(count([self.ctx_init]))
            if n_ctx is not None and n_ctx != m:
                raise ConfigError(f"n_ctx={n_ctx} does not match ctx_init {phrase!r} ({m} tokens): leave n_ctx out")
        else:
            m = 16 if n_ctx is None else n_ctx
            phrase = " ".join(["X"] * m)
        if m < 1:
            raise ConfigError(f"n_ctx must be at least 1, not {m}")
        prompts = [f"{phrase} {name}." for name in self.class_names]
        ids, empty, alone = tokenizer(prompts), tokenizer([""])[0], tokenizer([phrase])[0]
        s = int((empty != alone).int().argmax())  # leading special tokens (SOS / [CLS]), before the context
        name_lens = count(self.class_names)
        fits = (count(prompts) == m + name_lens + count(["."])) & (ids[:, s:s + m] == alone[s:s + m]).all(1)
        for name, prompt, ok in zip(self.class_names, prompts, fits.tolist()):
            if not ok:
                raise ConfigError(f"class {name!r}: the prompt {prompt!r} does not fit the text tower's "
                                  f"{ids.shape[1]} tokens as context + name + '.'")
        weight = self.tower.embed.weight
        ids = ids.to(weight.device)
        with torch.no_grad():
            emb = self.tower.embed(ids)
        order = _layout(position, s, m, name_lens.tolist(), ids.shape[1]).to(weight.device)
        self.n_ctx, self.n_special = m, s
        self.register_buffer("order", order, persistent=False)  # the state dict holds the context only
        self.register_buffer("token_ids", ids.gather(1, order), persistent=False)
        self.register_buffer("token_prefix", emb[:, :s], persistent=False)
        self.register_buffer("token_suffix", emb[:, s + m:], persistent=False)  # name, '.', EOS, padding
        shape = (len(self.class_names), m, weight.shape[1]) if class_specific else (m, weight.shape[1])
        if ctx is None:
            if self.ctx_init:
                init = emb[:, s:s + m] if class_specific else emb[0, s:s + m]
            else:
                init = torch.empty(shape, device=weight.device).normal_(std=0.02)
            ctx = nn.Parameter(init.float().clone())
        elif tuple(ctx.shape) != shape:
            raise ConfigError(f"a context of shape {tuple(ctx.shape)} does not fit prompts that need {shape}")
        self.ctx = ctx

    @property
    def width(self) -> int:
        """The token-embedding width: the meta-net's output size."""
        return self.ctx.shape[-1]

    def prompts(self, ctx_shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The token embeddings fed to the tower: (C, L, W); (B, C, L, W) with a shift (B, W) on every context token."""
        c = len(self.class_names)
        ctx = self.ctx.expand(c, -1, -1) if self.ctx.dim() == 2 else self.ctx
        if ctx_shift is not None:
            ctx = ctx.unsqueeze(0) + ctx_shift[:, None, None, :]
        lead = ctx.shape[:-3]
        prefix, suffix = self.token_prefix.expand(*lead, -1, -1, -1), self.token_suffix.expand(*lead, -1, -1, -1)
        full = torch.cat([prefix, ctx.to(prefix.dtype), suffix], dim=-2)
        return full[..., torch.arange(c, device=full.device)[:, None], self.order, :]

    def forward(self, ctx_shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised class-text features: (C, D) (CoOp), or (B, C, D) for a per-image shift (B, W) (CoCoOp)."""
        x = self.prompts(ctx_shift)
        lead, c = x.shape[:-3], len(self.class_names)
        x = x.reshape(-1, *x.shape[-2:])
        features = self.tower.encode(self.token_ids.repeat(x.shape[0] // c, 1), x)
        return F.normalize(features, dim=-1).reshape(*lead, c, -1)

    def for_classes(self, class_names: Sequence[str]) -> "PromptLearner":
        """The same learned context on other classes (base-to-new evaluation): the ``ctx`` tensor is shared."""
        if self.class_specific:
            raise ConfigError("class-specific contexts are learned per class: they cannot score other classes")
        return PromptLearner(self.tower.model, self.tokenizer, class_names, n_ctx=self.n_ctx,
                             ctx_init=self.ctx_init, position=self.position, ctx=self.ctx)


class MetaNet(nn.Sequential):
    """CoCoOp's meta-net: image features -> one shift for all context tokens (Linear, ReLU, Linear; a
    bottleneck of vis_dim // 16, PyTorch's default init). Layer names as CoCoOp's, so its weights map."""

    def __init__(self, vis_dim: int, ctx_dim: int):
        hidden = max(1, vis_dim // 16)
        super().__init__(OrderedDict([("linear1", nn.Linear(vis_dim, hidden)), ("relu", nn.ReLU()),
                                      ("linear2", nn.Linear(hidden, ctx_dim))]))


class PromptHead(nn.Module):
    """Cosine similarities of normalised image features (B, D) with the learned class texts: (B, C).

    Without a meta-net it is CoOp: one set of class features for all images. With one it is
    CoCoOp: the meta-net reads the normalised image features (as CoCoOp's code does) and each
    image gets its own class features, so there is no fixed classifier."""

    def __init__(self, learner: PromptLearner, meta_net: Optional[nn.Module] = None):
        super().__init__()
        self.learner, self.meta_net = learner, meta_net

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        if self.meta_net is None:
            return image_features @ self.learner().to(image_features.dtype).T
        text = self.learner(self.meta_net(image_features))  # (B, C, D)
        return torch.einsum("bd,bcd->bc", image_features, text.to(image_features.dtype))

    def class_features(self) -> torch.Tensor:
        """CoOp's fixed class features (C, D) for evaluation; CoCoOp has none (its classifier depends on the image)."""
        if self.meta_net is not None:
            raise ConfigError("CoCoOp has no fixed class features: its classifier is made anew for each image")
        with torch.no_grad():
            return self.learner()

    def for_classes(self, class_names: Sequence[str]) -> "PromptHead":
        """This head on other classes, sharing the learned context and meta-net."""
        return PromptHead(self.learner.for_classes(class_names), self.meta_net)
