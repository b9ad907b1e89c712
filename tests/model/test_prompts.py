"""CoOp / CoCoOp prompt learning: checked against the towers' own encode_text and hand-assembled prompts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipood.errors import ConfigError
from clipood.model import MetaNet, PromptHead, PromptLearner, encode_class_texts, load_backbone

NAMES = ["dog", "hot air balloon", "cat"]  # names of 1 and 3 tokens: the layouts must cope with both
PHRASE_AT = {"end": "a photo of a {}.", "front": "{} a photo of a.", "middle": "a photo {} of a."}


def _frozen(arch: str):
    bb = load_backbone(arch, "none")
    bb.model.eval().requires_grad_(False)  # as the trainer freezes the towers
    return bb


@pytest.fixture(scope="module", params=["clipood-tiny", "clipood-tiny-towers"])
def backbone(request):
    """open_clip's own text transformer (CLIP) and a Hugging Face BERT tower (CustomTextCLIP)."""
    return _frozen(request.param)


@pytest.fixture(scope="module")
def tiny():
    return _frozen("clipood-tiny")


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_a_phrase_context_gives_the_towers_own_features_for_that_prompt(backbone, position):
    """ctx_init "a photo of a": the learner's features are encode_text of the written-out prompt."""
    model, tok = backbone.model, backbone.tokenizer
    learner = PromptLearner(model, tok, NAMES, ctx_init="a photo of a", position=position)
    assert learner.n_ctx == 4
    texts = [PHRASE_AT[position].format(n) for n in NAMES]
    with torch.no_grad():
        ours = learner()
        expected = F.normalize(model.encode_text(tok(texts)), dim=-1)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    if position == "end":
        torch.testing.assert_close(ours, encode_class_texts(model, tok, NAMES, ["a photo of a {}."]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cocoop", [False, True])
def test_only_the_context_and_meta_net_learn(backbone, cocoop):
    model = backbone.model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    learner = PromptLearner(model, backbone.tokenizer, NAMES, n_ctx=4)
    assert [n for n, _ in learner.named_parameters()] == ["ctx"] and list(learner.state_dict()) == ["ctx"]
    dim = model.encode_image(torch.zeros(1, 3, 32, 32)).shape[-1]
    head = PromptHead(learner, MetaNet(dim, learner.width) if cocoop else None)
    scores = head(_unit(4, dim, 0))
    assert scores.shape == (4, len(NAMES))
    F.cross_entropy(scores / 0.01, torch.tensor([0, 1, 2, 0])).backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    if cocoop:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.meta_net.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_the_learner_leaves_the_towers_trainable_flags_alone():
    bb = load_backbone("clipood-tiny", "none")
    PromptLearner(bb.model, bb.tokenizer, NAMES, n_ctx=2)(torch.zeros(1, 32))
    assert all(p.requires_grad for p in bb.model.parameters())


def test_cocoop_shifts_every_context_token_by_the_meta_net_output(tiny):
    model, tok = tiny.model, tiny.tokenizer
    learner = PromptLearner(model, tok, NAMES, n_ctx=4)
    m, c, shift = 4, len(NAMES), torch.randn(2, learner.width, generator=torch.Generator().manual_seed(1))
    seen = []  # what the tower's transformer receives: prompt embeddings + positional embeddings
    hook = model.transformer.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(args[0]), with_kwargs=True)
    try:
        with torch.no_grad():
            shifted = learner(shift)
    finally:
        hook.remove()
    fed = (seen[0] - model.positional_embedding).reshape(2, c, -1, learner.width)
    plain = learner.prompts()
    for b in range(2):
        torch.testing.assert_close(fed[b, :, 1:1 + m], (learner.ctx + shift[b]).expand(c, -1, -1).detach())
        torch.testing.assert_close(fed[b, :, :1], plain[:, :1])  # SOS and everything after the context unchanged
        torch.testing.assert_close(fed[b, :, 1 + m:], plain[:, 1 + m:])
        moved = PromptLearner(model, tok, NAMES, n_ctx=4)  # CoOp with the shifted context
        with torch.no_grad():
            moved.ctx.copy_(learner.ctx + shift[b])
            torch.testing.assert_close(shifted[b], moved(), atol=1e-5, rtol=0)


def test_cocoop_head_feeds_the_normalised_image_features_to_the_meta_net(tiny):
    learner = PromptLearner(tiny.model, tiny.tokenizer, NAMES, ctx_init="a photo of a")
    meta = MetaNet(32, learner.width)
    assert [tuple(meta.linear1.weight.shape), tuple(meta.linear2.weight.shape)] == [(2, 32), (32, 2)]
    feats = _unit(3, 32, 2)
    with torch.no_grad():
        scores = PromptHead(learner, meta)(feats)
        hidden = torch.relu(feats @ meta.linear1.weight.T + meta.linear1.bias)
        shift = hidden @ meta.linear2.weight.T + meta.linear2.bias
        for b in range(3):
            torch.testing.assert_close(scores[b], learner(shift[b:b + 1])[0] @ feats[b], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="CoCoOp has no fixed class features"):
        PromptHead(learner, meta).class_features()


@pytest.mark.parametrize("position", ["front", "middle"])
def test_class_position_layouts(tiny, position):
    """The class name before the context, or inside it after n_ctx // 2 tokens, as CoOp lays them out."""
    model, tok = tiny.model, tiny.tokenizer
    learner = PromptLearner(model, tok, NAMES, n_ctx=4, position=position)
    ctx, prompts = learner.ctx.detach(), learner.prompts()
    for i, name in enumerate(NAMES):
        k = len(tok.encode(name))
        emb = model.token_embedding(tok([f"X X X X {name}."]))[0]
        name_emb, rest = emb[5:5 + k], emb[5 + k:]
        inner = [name_emb, ctx] if position == "front" else [ctx[:2], name_emb, ctx[2:]]
        torch.testing.assert_close(prompts[i], torch.cat([emb[:1], *inner, rest]))
        written = f"{name} X X X X." if position == "front" else f"X X {name} X X."
        assert torch.equal(learner.token_ids[i], tok([written])[0])


def test_class_specific_contexts(tiny):
    model, tok = tiny.model, tiny.tokenizer
    learner = PromptLearner(model, tok, NAMES, n_ctx=4, class_specific=True)
    assert learner.ctx.shape == (len(NAMES), 4, learner.width)
    prompts = learner.prompts()
    for i, name in enumerate(NAMES):
        emb = model.token_embedding(tok([f"X X X X {name}."]))[0]
        torch.testing.assert_close(prompts[i], torch.cat([emb[:1], learner.ctx[i].detach(), emb[5:]]))
    assert not torch.equal(learner.ctx[0], learner.ctx[1])
    with pytest.raises(ConfigError, match="class-specific"):
        learner.for_classes(["bird"])
    phrase = PromptLearner(model, tok, NAMES, ctx_init="a photo of a", class_specific=True)
    with torch.no_grad():
        torch.testing.assert_close(phrase(), F.normalize(model.encode_text(tok([f"a photo of a {n}." for n in NAMES])),
                                                         dim=-1), atol=1e-5, rtol=0)


def test_for_classes_shares_the_context(tiny):
    learner = PromptLearner(tiny.model, tiny.tokenizer, ["dog", "cat"], n_ctx=4)
    head = PromptHead(learner, MetaNet(32, learner.width))
    other = head.for_classes(["cat", "bird", "hot air balloon"])
    assert other.learner.ctx is learner.ctx and other.meta_net is head.meta_net
    with torch.no_grad():
        learner.ctx.add_(0.5)  # a training step on the base classes moves the new classes' prompts too
        torch.testing.assert_close(other.learner()[0], learner()[1], atol=1e-5, rtol=0)
    other.learner()[1].sum().backward()
    assert learner.ctx.grad is not None
    coop = PromptHead(learner)
    feats = _unit(2, 32, 3)
    with torch.no_grad():
        torch.testing.assert_close(coop(feats), feats @ coop.class_features().T)


def test_bad_options_are_one_line_config_errors(tiny):
    model, tok = tiny.model, tiny.tokenizer
    with pytest.raises(ConfigError, match=r"n_ctx=8 does not match ctx_init 'a photo of a' \(4 tokens\)"):
        PromptLearner(model, tok, NAMES, n_ctx=8, ctx_init="a photo of a")
    with pytest.raises(ConfigError, match="position 'left'"):
        PromptLearner(model, tok, NAMES, position="left")
    with pytest.raises(ConfigError, match="class 'very long"):
        PromptLearner(model, tok, ["dog", "very long " * 20], n_ctx=4)  # past the 32-token context: truncated


@pytest.mark.parametrize("arch", ["clipood-tiny", "clipood-tiny-towers"])
def test_a_bfloat16_tower_runs_in_its_own_dtype_with_a_float32_context(arch):
    bb = load_backbone(arch, "none")
    model = bb.model.eval().requires_grad_(False).to(torch.bfloat16)
    learner = PromptLearner(model, bb.tokenizer, NAMES, ctx_init="a photo of a")
    assert learner.ctx.dtype == torch.float32  # the optimiser's copy stays full precision
    with torch.no_grad():
        expected = F.normalize(model.encode_text(bb.tokenizer([f"a photo of a {n}." for n in NAMES])), dim=-1)
        torch.testing.assert_close(learner(), expected, atol=1e-2, rtol=0)
