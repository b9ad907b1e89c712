"""What --arch/--pretrained load, said in words; nothing random without asking for it."""

from __future__ import annotations

import json
import shutil

import pytest

from clipood.errors import ModelError
from clipood.model.backbones import load_backbone
from clipood.model.weights import resolve_weights


def _folder_without_weights(tiny_pretrained, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    shutil.copy(tiny_pretrained / "open_clip_config.json", folder)
    return folder


def test_a_folder_without_weights_is_an_error_and_none_is_the_way_to_random(tiny_pretrained, tmp_path):
    folder = _folder_without_weights(tiny_pretrained, tmp_path)
    with pytest.raises(ModelError, match="holds no weights.*--pretrained none"):
        load_backbone(f"local-dir:{folder}")
    b = load_backbone(f"local-dir:{folder}", "none")
    assert b.weights.kind == "random" and "random weights" in b.weights.about


@pytest.mark.parametrize("pretrained", ["openai", "/no/such/file.pt", "laion2b"])
def test_pretrained_does_not_apply_to_a_folder(tiny_pretrained, pretrained):
    with pytest.raises(ModelError, match=f"--pretrained {pretrained}: does not apply with --arch local-dir:"):
        resolve_weights(f"local-dir:{tiny_pretrained}", pretrained)


def test_random_bytes_as_a_checkpoint_file_fail_in_one_line(tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(ModelError) as e:
        load_backbone("clipood-tiny", str(junk))
    assert "could not load clipood-tiny" in str(e.value) and "\n" not in str(e.value)


def test_what_was_loaded_is_recorded(tiny_config, tiny_pretrained, capsys):
    from clipood.commands import train as run_train
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.train.steps = 2
    run, results = run_train(cfg, progress=False)
    assert results["backbone"]["weights"] == f"the folder's weights ({tiny_pretrained / 'open_clip_model.safetensors'})"
    meta = json.loads((run.path / "model" / "clipood.json").read_text())
    assert meta["source_pretrained"] is None and meta["source_weights"] == results["backbone"]["weights"]
    assert "random" not in capsys.readouterr().err

    cfg.model.pretrained, cfg.run.name = "none", "random"
    run, results = run_train(cfg, progress=False)
    assert "random weights" in results["backbone"]["weights"]
    err = capsys.readouterr().err
    assert "clipood: note: starting from random weights" in err and len(err.strip().splitlines()) == 1


def test_auto_picks_openai_then_the_clipood_tag_and_otherwise_says_what_to_pass():
    assert resolve_weights("ViT-B-16").pretrained == "openai"
    with pytest.raises(ModelError, match="the 'emoji' weights of clipood-lite0-minilm are not built here"):
        resolve_weights("clipood-lite0-minilm")  # CLIPOOD_CACHE of the tests holds no tags
    with pytest.raises(ModelError, match="clipood-tiny has no default weights; pass a tag"):
        resolve_weights("clipood-tiny")
    assert resolve_weights("clipood-tiny", "none").kind == "random"
    assert resolve_weights("clipood-lite0-minilm", "towers").kind == "towers"


# ------------------------------------------------------------------ issue 23: a broken model never scores


def _broken_copy(folder, tmp_path, name, value, key=None):
    """A copy of an open_clip folder with one value of one tensor set to NaN/inf (the first float tensor)."""
    from safetensors.torch import load_file, save_file
    out = tmp_path / f"broken-{name}"
    shutil.copytree(folder, out)
    sd = load_file(str(out / "open_clip_model.safetensors"))
    key = key or next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = value
    save_file(sd, str(out / "open_clip_model.safetensors"))
    return out, key


@pytest.mark.parametrize("where", ["visual.conv1.weight", "token_embedding.weight", "text_projection"])
def test_non_finite_weights_are_an_error_naming_the_model_case7(tiny_pretrained, tmp_path, where):
    """The image tower (case 7) and, as a variant, the text tower."""
    folder, key = _broken_copy(tiny_pretrained, tmp_path, where, float("nan"), key=where)
    with pytest.raises(ModelError, match=rf"local-dir:{folder} \(the folder's weights .*\): its weights hold NaN or "
                                         rf"inf \({key}: 1 of \d+ values\); the model is broken"):
        load_backbone(f"local-dir:{folder}")


def test_an_inf_in_a_batchnorm_buffer_is_an_error_case7(tmp_path):
    """A variant: a BatchNorm running statistic (a buffer, not a parameter) of a convolutional tower."""
    import torch

    from clipood.model.backbones import save_open_clip_folder
    bb = load_backbone("clipood-tiny-towers", "none")
    name = next(n for n, _ in bb.model.named_buffers() if n.endswith("running_var"))
    save_open_clip_folder(bb, tmp_path / "ok")
    folder, _ = _broken_copy(tmp_path / "ok", tmp_path, "bn", float("inf"), key=name)
    with pytest.raises(ModelError, match=rf"its weights hold NaN or inf \({name}: 1 of"):
        load_backbone(f"local-dir:{folder}")
    assert torch.isfinite(load_backbone(f"local-dir:{tmp_path / 'ok'}").model.state_dict()[name]).all()


def test_a_weights_folder_of_another_architecture_is_an_error_case7b(tiny_pretrained, tmp_path):
    import open_clip
    from safetensors.torch import save_file
    other = tmp_path / "emoji-s"
    other.mkdir()
    model = open_clip.create_model("clipood-emoji-s")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(other / "open_clip_model.safetensors"))
    (other / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config("clipood-emoji-s"),
                                                             "preprocess_cfg": {}}))
    with pytest.raises(ModelError, match=rf"--pretrained {other}: a model folder of another architecture than --arch "
                                         rf"clipood-tiny \(embed_dim is 128 there, 32 in --arch\); pass --arch "
                                         rf"local-dir:{other}"):
        load_backbone("clipood-tiny", str(other))
    with pytest.raises(ModelError, match="could not load clipood-tiny with clipood-tiny weights from"):
        load_backbone("clipood-tiny", str(other / "open_clip_model.safetensors"))  # a file of another architecture
    fits = load_backbone("clipood-tiny", str(tiny_pretrained))  # a folder of this architecture: its weights
    assert fits.weights.kind == "folder" and fits.weights.folder == tiny_pretrained
    with pytest.raises(ModelError, match="is neither a file, a model folder nor a tag of clipood-tiny"):
        load_backbone("clipood-tiny", str(tmp_path / "nosuch"))


@pytest.mark.parametrize("fails", [True, False])
def test_open_clips_error_log_is_one_line_of_clipoods(tiny_pretrained, monkeypatch, caplog, capsys, fails):
    """Offline, open_clip logged 'ERROR:root:Failed to download ...' before clipood's error: two lines. Its error
    records are held back; a load that fails says them in its one error line, one that goes on in a warning."""
    import logging

    import open_clip

    from clipood.model import backbones
    real = open_clip.create_model_and_transforms

    def logging_then(*args, **kwargs):
        logging.error("Failed to download weights for tag 'x': no connection")
        if fails:
            raise RuntimeError("Failed to download weights for tag 'x': no connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(backbones.open_clip, "create_model_and_transforms", logging_then)
    with caplog.at_level(logging.WARNING):
        if fails:
            with pytest.raises(ModelError, match="Failed to download weights for tag 'x'"):
                load_backbone(f"local-dir:{tiny_pretrained}")
        else:
            load_backbone(f"local-dir:{tiny_pretrained}")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # nothing reached a log handler
    err = capsys.readouterr().err
    assert ("clipood: warning: open_clip: Failed to download weights for tag 'x': no connection" in err) != fails
