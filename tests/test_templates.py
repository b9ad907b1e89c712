"""Prompt templates: presets are open_clip's lists, files are read line by line, and the class-text
encoder (open_clip's build_zero_shot_classifier) equals a direct computation."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

import clipood.model  # noqa: F401  (registers the bundled tiny config)
from clipood.errors import ConfigError
from clipood.model.heads import encode_class_texts
from clipood.templates import expand_templates


def test_presets_are_open_clips_lists_as_format_strings():
    ai = expand_templates(["openai-imagenet"])
    assert len(ai) == 80 and [t.format("dog") for t in ai] == [f("dog") for f in OPENAI_IMAGENET_TEMPLATES]
    simple = expand_templates(["simple"])
    assert [t.format("a cat") for t in simple] == [f("a cat") for f in SIMPLE_IMAGENET_TEMPLATES]
    assert expand_templates(["a photo of a {}.", "simple"]) == ["a photo of a {}.", *simple]


def test_a_template_file_one_per_line(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("# my prompts\na sketch of a {}.\n\n  an emoji of a {}.  \n")
    assert expand_templates([str(f)]) == ["a sketch of a {}.", "an emoji of a {}."]
    f.write_text("a sketch\n")
    with pytest.raises(ConfigError, match=r"t.txt, template 1 'a sketch' needs one '\{\}'"):
        expand_templates([str(f)])
    f.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no template"):
        expand_templates([str(f)])


@pytest.mark.parametrize("bad", ["a photo", "{}-{}", "openai", "no-such-file.txt"])
def test_neither_template_preset_nor_file_is_one_line(bad):
    with pytest.raises(ConfigError, match="preset \\(auto, openai-imagenet, simple\\), or a file of templates"):
        expand_templates([bad])


def _direct(model, tokenizer, names, templates):
    """The ensemble written out: per class, mean of the normalised text embeddings, renormalised."""
    rows = []
    with torch.no_grad():
        for n in names:
            e = F.normalize(model.encode_text(tokenizer([t.format(n) for t in templates])).float(), dim=-1)
            rows.append(F.normalize(e.mean(0), dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize("templates", [["a photo of a {}."], ["a photo of a {}.", "a drawing of a {}."]])
def test_class_texts_equal_the_direct_computation(templates):
    torch.manual_seed(0)
    model = open_clip.create_model("clipood-tiny").eval()
    tok = open_clip.get_tokenizer("clipood-tiny")
    names = [f"class {i}" for i in range(23)]  # not a multiple of the classes per batch
    got = encode_class_texts(model, tok, names, templates, batch_size=20)
    want = _direct(model, tok, names, templates)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert torch.equal(got.argmax(0), want.argmax(0))
    assert model.training is False


def test_a_missing_template_file_is_named_as_a_missing_file(tmp_path):
    from clipood.config.validation import check_templates
    with pytest.raises(ConfigError, match=r"--template: .*nope\.txt: file not found"):
        check_templates([str(tmp_path / "nope.txt")])
    check_templates(["simple", "a photo of a {}."])  # presets and templates pass


def test_a_template_file_with_a_byte_order_mark_case9(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes("\ufeffa photo of a {}.\na drawing of a {}.\n".encode())
    assert expand_templates([str(f)]) == ["a photo of a {}.", "a drawing of a {}."]
