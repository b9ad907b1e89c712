"""clipood export --hf: open_clip's Hub layout (save_for_hf), loadable by plain open_clip with identical
predictions, with clipood's files and a model card; --push refused offline in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import open_clip
import pytest
import torch

from clipood.commands import load_classifier
from clipood.commands.hub import export_hf
from clipood.data.images import load_rgb
from clipood.errors import ClipoodError


def test_hub_folder_loads_in_open_clip_with_identical_predictions(trained_run, shapes_root, tmp_path):
    out = export_hf(trained_run, tmp_path / "hf")  # a run folder is taken as RUN/model
    names = {p.name for p in out.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "README.md", "clipood.json"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no debris beside the folder"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model.eval()
    tok = open_clip.get_tokenizer(f"local-dir:{out}")
    clf = load_classifier(trained_run / "model")
    paths = sorted((shapes_root / "sketch").rglob("*.png"))[:6]
    texts = tok([f"a photo of a {c}." for c in clf.class_names])
    with torch.no_grad():
        x = torch.stack([preprocess(load_rgb(p)) for p in paths])
        f = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        t = torch.nn.functional.normalize(model.encode_text(texts), dim=-1)
        mine = clf.scores(torch.stack([clf.preprocess(load_rgb(p)) for p in paths]))
    assert torch.equal((f @ t.T).argmax(1), mine.argmax(1))
    torch.testing.assert_close(f @ t.T, mine * clf.temperature, rtol=0, atol=1e-5)
    card = (out / "README.md").read_text()
    assert card.startswith("---\ntags:") and "library_name: open_clip" in card
    for fact in ("loss mms, averaging bma", "3 steps", "held-out domains: sketch", "| split | role |", "lr 0.001"):
        assert fact in card, fact
    assert json.loads((out / "clipood.json").read_text())["class_names"] == clf.class_names


def test_existing_folder_and_offline_push_are_refused(trained_run, tmp_path, monkeypatch):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ClipoodError, match="exists and is not an empty folder"):
        export_hf(trained_run / "model", tmp_path / "full")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ClipoodError, match="--push me/model: HF_HUB_OFFLINE=1 is set"):
        export_hf(trained_run / "model", tmp_path / "new", push="me/model")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ClipoodError, match="not an exported model folder"):
        export_hf(tmp_path / "full", tmp_path / "new")


def test_push_goes_through_open_clips_push_to_hf_hub(trained_run, tmp_path, monkeypatch):
    calls = []
    import importlib

    import huggingface_hub
    hub = importlib.import_module("open_clip.push_to_hf_hub")  # the package re-exports a function of that name
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "push_to_hf_hub", lambda *a, **k: calls.append(("push", a[3], k["model_card"])))
    monkeypatch.setattr(huggingface_hub, "upload_file", lambda **k: calls.append(("file", k["path_in_repo"])))
    export_hf(trained_run / "model", tmp_path / "hf", push="me/model")
    assert calls[0][0] == "push" and calls[0][1] == "me/model" and "details" in calls[0][2]
    assert ("file", "clipood.json") in calls


def test_cli_export_help_and_run(trained_run, tmp_path):
    res = subprocess.run([sys.executable, "-m", "clipood", "export", str(trained_run / "model"), "--hf",
                          str(tmp_path / "hf"), "--private"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Hugging Face layout written to" in res.stdout
    assert "clipood: warning: --private: applies with --push" in res.stderr  # nothing ignored silently


def test_export_onto_a_full_disk_is_the_disk_full_line_case7c(trained_run, tmp_path, capsys, monkeypatch):
    """Simulated: safetensors reports a full disk in its own error type (SafetensorError), not an OSError."""
    import importlib

    from safetensors import SafetensorError

    from clipood.cli import main

    def full(model, tokenizer, model_config, save_directory, **kw):
        (open(f"{save_directory}/open_clip_model.safetensors", "wb")).write(b"half")
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                              'left on device" })')
    hub = importlib.import_module("open_clip.push_to_hf_hub")  # the module: open_clip's name is its function
    monkeypatch.setattr(hub, "save_for_hf", full)
    code = main(["export", str(trained_run), "--hf", str(tmp_path / "hf")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"clipood: error: {tmp_path / 'hf'}: the disk is full")
    assert not (tmp_path / "hf").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
