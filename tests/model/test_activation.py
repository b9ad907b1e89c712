"""The activation is the one the weights were trained with: OpenAI's CLIP is built with QuickGELU, as the
official code's clip.load builds it (open_clip 3.x builds GELU for 'ViT-B-16' + 'openai' and only warns).

Nothing here downloads: the tag's activation comes from open_clip's pretrained config, and the builds
replace the download and the checkpoint load with nothing (the architecture is what is checked)."""

from __future__ import annotations

from unittest import mock

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from clipood.model.backbones import load_backbone, planned_activation, save_open_clip_folder
from clipood.model.weights import resolve_weights


def _activations(model: torch.nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))}


@pytest.fixture
def no_download(tmp_path):
    """open_clip builds the architecture of a tag, but fetches and loads no weights."""
    empty = tmp_path / "weights.bin"
    empty.write_bytes(b"")
    with mock.patch("open_clip.factory.download_pretrained", return_value=str(empty)), \
            mock.patch("open_clip.factory.load_checkpoint"):
        yield


@pytest.mark.parametrize("arch,tag,quick", [
    ("ViT-B-16", "openai", True), ("ViT-B-32", "openai", True), ("RN50", "openai", True),
    ("ViT-B-16-quickgelu", "metaclip_fullcc", True), ("ViT-B-32", "laion2b_s34b_b79k", False),
])
def test_the_activation_is_the_tags_own(arch, tag, quick):
    assert resolve_weights(arch, tag).quick_gelu is quick
    assert planned_activation(arch, tag) == ("quick_gelu" if quick else "gelu")


def test_vit_b_16_with_openai_weights_is_built_with_quickgelu(no_download):
    backbone = load_backbone("ViT-B-16", "openai")
    assert _activations(backbone.model) == {QuickGELU}
    assert backbone.activation == "quick_gelu" and backbone.model_cfg["quick_gelu"] is True


def test_a_laion_tag_is_built_with_gelu(no_download):
    backbone = load_backbone("ViT-B-32", "laion2b_s34b_b79k")
    assert _activations(backbone.model) == {torch.nn.GELU}
    assert backbone.activation == "gelu"


def test_an_override_against_the_weights_is_built_as_asked_with_one_warning_line(no_download, capsys):
    backbone = load_backbone("ViT-B-16", "openai", activation="gelu")
    assert _activations(backbone.model) == {torch.nn.GELU}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clipood: warning: --activation gelu:") and "quick_gelu" in err[0]


def test_no_library_warning_reaches_the_user(no_download, recwarn):
    load_backbone("ViT-B-16", "openai", activation="gelu")
    assert not [w for w in recwarn if "QuickGELU" in str(w.message)]


def test_a_tiny_quickgelu_model_reloads_with_quickgelu(tmp_path):
    built = load_backbone("clipood-tiny", "none", activation="quick_gelu")
    assert _activations(built.model) == {QuickGELU}
    save_open_clip_folder(built, tmp_path / "model")
    again = load_backbone(f"local-dir:{tmp_path / 'model'}")  # auto: the folder's own record
    assert _activations(again.model) == {QuickGELU} and again.activation == "quick_gelu"
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'model'}")
    assert _activations(plain) == {QuickGELU}  # plain open_clip reads the same record
    for a, b in zip(built.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_file_says_it_cannot_tell_the_activation(tmp_path, capsys):
    model = open_clip.create_model("ViT-B-32")  # an architecture with OpenAI (QuickGELU) weights
    path = tmp_path / "ViT-B-32.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    backbone = load_backbone("ViT-B-32", str(path))
    assert backbone.activation == "gelu"  # the architecture config's, as asked for
    assert "--activation quick_gelu" in capsys.readouterr().err
