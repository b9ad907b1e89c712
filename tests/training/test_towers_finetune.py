"""Fine-tuning a BatchNorm image tower with a Hugging Face text tower, as the official code does:
norm layers frozen by default, tau from the model, and an export that needs nothing else."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from clipood.cli import main
from clipood.commands import train as run_train

TOWERS = "clipood-tiny-towers"


@pytest.fixture(scope="module")
def towers_source(tmp_path_factory):
    """A self-contained local-dir folder of the tiny towers, BatchNorm statistics far from their init."""
    from clipood.model.backbones import load_backbone, save_open_clip_folder
    torch.manual_seed(7)
    b = load_backbone(TOWERS, "none")
    with torch.no_grad():
        b.model.logit_scale.fill_(3.0)  # tau = exp(-3), not CLIP's 0.01
        for name, t in b.model.visual.named_buffers():
            if name.endswith("running_mean"):
                t.normal_(0, 0.5)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
    out = tmp_path_factory.mktemp("towers") / "source"
    save_open_clip_folder(b, out)
    return out


def _cfg(tiny_config, source, **train):
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{source}", "auto"
    cfg.data.holdout_domains, cfg.data.base_to_new = ["sketch"], True
    cfg.optim.lr = 1e-2
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def _bn(state):
    return {k: v for k, v in state.items() if k.startswith("visual.") and ("running_" in k or "num_batches" in k)}


def test_batchnorm_statistics_are_bit_identical_by_default_and_move_with_train(tiny_config, towers_source, tmp_path):
    before = load_file(str(towers_source / "open_clip_model.safetensors"))
    run, results = run_train(_cfg(tiny_config, towers_source), progress=False)
    after = load_file(str(run.path / "model" / "open_clip_model.safetensors"))
    assert _bn(before) and all(torch.equal(before[k], after[k]) for k in _bn(before))
    affine = [k for k in before if k.startswith("visual.trunk.") and k.endswith(".weight") and "bn" in k]
    assert affine and any(not torch.equal(before[k], after[k]) for k in affine)  # their affine weights train
    assert results["method"]["norm_layers"] == "frozen"
    assert results["average_extra_bytes"] == sum(  # BMA keeps the trained tensors only, no statistics
        v.numel() * 4 for k, v in before.items() if k.startswith("visual.") and "running_" not in k
        and "num_batches" not in k)

    cfg = _cfg(tiny_config, towers_source, norm_layers="train")
    cfg.run.name = "train-norms"
    run, results = run_train(cfg, progress=False)
    moved = load_file(str(run.path / "model" / "open_clip_model.safetensors"))
    assert results["method"]["norm_layers"] == "train"
    assert any(not torch.equal(before[k], moved[k]) for k in _bn(before) if "running_" in k)


def test_default_temperature_is_the_models_learned_logit_scale(tiny_config, towers_source):
    from clipood.training.experiment import build_experiment
    exp = build_experiment(_cfg(tiny_config, towers_source))
    assert exp.temperature == pytest.approx(float(torch.exp(torch.tensor(-3.0))))
    assert exp.loss_fn.temperature == exp.temperature
    tiny_config.loss.temperature = 0.01  # an explicit value wins
    assert build_experiment(tiny_config).loss_fn.temperature == 0.01


def test_export_with_hf_text_tower_reloads_after_the_source_folder_moves(tiny_config, towers_source, tmp_path,
                                                                            capsys):
    import open_clip

    from clipood.data.folder import scan
    from clipood.data.images import load_rgb
    source = tmp_path / "source"
    shutil.copytree(towers_source, source)
    run, results = run_train(_cfg(tiny_config, source), progress=False)
    model_dir = run.path / "model"
    shutil.move(str(source), str(tmp_path / "moved-away"))

    text = (model_dir / "open_clip_config.json").read_text()
    assert str(source) not in text and "site-packages" not in text  # nothing outside the folder is named
    out = tmp_path / "reeval.json"
    assert main(["eval", "--model", str(model_dir), "--root", tiny_config.data.root, "--holdout-domain", "sketch",
                 "--base-to-new", "--workers", "0", "--no-progress", "--out", str(out)]) == 0
    reeval = json.loads(out.read_text())["final"]
    for name, entry in results["final"].items():
        assert reeval[name]["accuracy"] == entry["accuracy"], name

    # plain open_clip: the same folder, the same predictions as clipood's exported classifier
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    index = scan(tiny_config.data.root)
    model.eval()
    with torch.no_grad():
        classes = model.encode_text(tokenizer([f"a photo of a {c}." for c in index.class_names]), normalize=True)
        images = torch.stack([preprocess(load_rgb(p)) for p in index.paths[:24]])
        plain = (model.encode_image(images, normalize=True) @ classes.T).argmax(1)
    from clipood.model.backbones import load_backbone
    ours = load_backbone(f"local-dir:{model_dir}")
    ours.model.eval()
    with torch.no_grad():
        feats = ours.model.encode_image(torch.stack([ours.preprocess_val(load_rgb(p)) for p in index.paths[:24]]),
                                        normalize=True)
        mine = (feats @ ours.model.encode_text(ours.tokenizer([f"a photo of a {c}." for c in index.class_names]),
                                               normalize=True).T).argmax(1)
    assert torch.equal(plain, mine)


def test_hub_export_of_an_hf_text_tower_is_self_contained(tiny_config, towers_source, tmp_path):
    """clipood export --hf with a Hugging Face text tower: its config and tokenizer are in the folder, which
    plain open_clip loads (the run removed) with the predictions of the run's own model."""
    import open_clip

    from clipood.commands.hub import export_hf
    from clipood.data.folder import scan
    from clipood.data.images import load_rgb
    run, _ = run_train(_cfg(tiny_config, towers_source), progress=False)
    hf = export_hf(run.path / "model", tmp_path / "hub")
    assert {"config.json", "tokenizer.json", "open_clip_config.json", "open_clip_model.safetensors"} <= \
        {p.name for p in hf.iterdir()}
    index = scan(tiny_config.data.root)
    prompts = [f"a photo of a {c}." for c in index.class_names]

    def predictions(where):
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{where}")
        tok = open_clip.get_tokenizer(f"local-dir:{where}")
        model.eval()
        with torch.no_grad():
            t = model.encode_text(tok(prompts), normalize=True)
            return (model.encode_image(torch.stack([preprocess(load_rgb(p)) for p in index.paths[:24]]),
                                       normalize=True) @ t.T).argmax(1)

    before = predictions(run.path / "model")
    shutil.move(str(run.path), str(tmp_path / "run-moved-away"))
    assert torch.equal(predictions(hf), before)
