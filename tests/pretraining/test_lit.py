"""LiT in `clipood pretrain`: locked towers stay put, cached features give the loss of the whole model."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from clipood.errors import ConfigError

TOWERS = "clipood-tiny-towers"  # a timm BatchNorm image tower and a Hugging Face text tower, random weights


@pytest.fixture(scope="module")
def captions_csv(shapes_root):
    path = shapes_root / "lit-captions.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "title", "domain"])
        for img in sorted(shapes_root.glob("*/*/*.png")):
            style, shape = img.parent.parent.name, img.parent.name
            w.writerow([img.relative_to(shapes_root).as_posix(), f"a {shape}, {style}, drawing", style])
    return path


def _cfg(csv_path, out, *, steps=12, name="lit", lock=True, **model):
    from clipood.pretraining.config import PretrainConfig, validate_pretrain
    cfg = PretrainConfig()
    cfg.model.arch, cfg.model.pretrained = TOWERS, "none"
    cfg.model.lock_image = cfg.model.lock_text = lock
    for k, v in model.items():
        setattr(cfg.model, k, v)
    cfg.data.csv, cfg.data.workers, cfg.data.val_size = str(csv_path), 0, 16
    cfg.train.steps, cfg.train.batch_size, cfg.train.eval_every = steps, 16, 0
    cfg.train.checkpoint_every, cfg.train.log_every = 0, 1
    cfg.optim.lr, cfg.optim.warmup_steps = 1e-2, 0
    cfg.run.output_dir, cfg.run.name = str(out), name
    return validate_pretrain(cfg)


def test_cached_features_give_the_loss_of_the_whole_model(captions_csv, tmp_path, monkeypatch, clip_loss):
    from clipood.data.images import load_rgb
    from clipood.pretraining import trainer
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(captions_csv, tmp_path)
    p = trainer.build(cfg)
    assert p.cache_features
    trainable = {n for n, t in p.model.named_parameters() if t.requires_grad}
    assert trainable == {"logit_scale", "visual.head.proj.weight", "visual.head.proj.bias", "text.proj.weight"}
    p.features = trainer.lit.frozen_features(p.model, p.table, p.tokens, p.backbone.preprocess_val,
                                             p.backbone.preprocess_cfg, device=p.device, progress=False)
    rows = p.train_rows[:16]
    idx = torch.as_tensor(rows)
    with torch.no_grad():
        img, txt, scale = trainer.features(p, None, idx, None)
        cached = clip_loss(img, txt, scale)
        p.model.eval()  # the whole model on the eval preprocessing: what the cache stands for
        images = torch.stack([p.backbone.preprocess_val(load_rgb(p.table.paths[i])) for i in rows])
        whole = clip_loss(p.model.encode_image(images), p.model.encode_text(p.tokens[idx]), p.model.logit_scale.exp())
    torch.testing.assert_close(cached, whole, rtol=1e-5, atol=1e-5)

    files = p.features.files
    again = trainer.lit.frozen_features(p.model, p.table, p.tokens, p.backbone.preprocess_val,
                                        p.backbone.preprocess_cfg, device=p.device, progress=False)
    assert again.files == files and torch.equal(again.image, p.features.image)  # read back, same key
    with torch.no_grad():
        p.model.visual.trunk.conv_stem.weight.add_(1.0)  # another image tower: another key
    moved = trainer.lit.cache_keys(p.model, p.table.paths, p.tokens, p.backbone.preprocess_cfg)
    assert f"image-{moved['image']}" not in files["image"] and f"text-{moved['text']}" in files["text"]


def test_lit_run_trains_only_the_projections_and_records_it(captions_csv, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from clipood.model import load_backbone
    from clipood.pretraining import trainer
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(captions_csv, tmp_path, steps=30)
    run, results = trainer.run_pretrain(cfg, progress=False)
    lines = [r for r in map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert results["towers"]["image"] == results["towers"]["text"] == "locked"
    assert results["towers"]["feature_cache"] and results["augmentation"].startswith("none")
    assert results["towers"]["image_projection"] == "linear-bias" and results["towers"]["text_projection"] == "linear"

    torch.manual_seed(cfg.train.seed)  # the same seed draws the same initial weights
    start = load_backbone(TOWERS, "none").model.state_dict()
    end = load_file(str(run.path / "model" / "open_clip_model.safetensors"))
    changed = {k for k in end if not torch.equal(end[k], start[k])}
    assert changed == {"logit_scale", "visual.head.proj.weight", "visual.head.proj.bias", "text.proj.weight"}


def test_projection_choices_and_their_limits(captions_csv, tmp_path, monkeypatch):
    from clipood.pretraining import trainer
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    p = trainer.build(_cfg(captions_csv, tmp_path, image_projection="linear", text_projection="none"))
    assert p.model.visual.head.proj.bias is None and isinstance(p.model.text.proj, torch.nn.Identity)
    p = trainer.build(_cfg(captions_csv, tmp_path, image_projection="none", text_projection="linear"))
    assert p.model.text.proj.out_features == p.model.visual.trunk.num_features
    with pytest.raises(ConfigError, match="--text-projection linear"):
        trainer.build(_cfg(captions_csv, tmp_path, image_projection="none", text_projection="none"))
    with pytest.raises(ConfigError, match="applies to timm image towers"):
        cfg = _cfg(captions_csv, tmp_path, image_projection="linear")
        cfg.model.arch = "clipood-tiny"
        trainer.build(cfg)
    cfg = _cfg(captions_csv, tmp_path)
    cfg.data.caption_tag_dropout = 0.5
    with pytest.raises(ConfigError, match="--caption-tag-dropout.*--feature-cache off"):
        trainer.build(cfg)


def test_locked_image_tower_keeps_its_batchnorm_statistics(captions_csv, tmp_path, monkeypatch):
    """Without the cache (towers run every step, with augmentation) the locked trunk still does not move."""
    from safetensors.torch import load_file

    from clipood.model import load_backbone
    from clipood.pretraining import trainer
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(captions_csv, tmp_path, steps=4, name="nocache")
    cfg.train.feature_cache = "off"
    run, results = trainer.run_pretrain(cfg, progress=False)
    assert results["towers"]["feature_cache"] is None
    torch.manual_seed(cfg.train.seed)
    start = load_backbone(TOWERS, "none").model.state_dict()
    end = load_file(str(run.path / "model" / "open_clip_model.safetensors"))
    trunk = [k for k in end if k.startswith(("visual.trunk.", "text.transformer."))]
    assert trunk and all(torch.equal(end[k], start[k]) for k in trunk)


def test_caption_max_tags_keeps_the_name(tmp_path):
    from clipood.pretraining.captions import keep_tags
    assert keep_tags("a dog, pet, puppy", 0) == "a dog"
    assert keep_tags("a dog, pet, puppy", 1) == "a dog, pet"
    assert keep_tags("a dog", 3) == "a dog"


def test_the_fast_feature_path_gives_the_plain_one(captions_csv, tmp_path, monkeypatch):
    """Folded BatchNorms and batched normalisation (the cache's encoder) against the tower as it is, per image."""
    from clipood.data.bad_images import BadImages
    from clipood.pretraining import lit, trainer
    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    p = trainer.build(_cfg(captions_csv, tmp_path))
    with torch.no_grad():
        for m in p.model.visual.trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # pretrained-like statistics, so the fold does something
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    bad = BadImages("fail", p.table.paths)
    p.model.eval()  # as frozen_features runs the locked towers
    args = (p.model, p.table, p.backbone.preprocess_val, p.device, None, 0, bad, False)
    fast, plain = lit._encode_images(*args, fast=True), lit._encode_images(*args, fast=False)
    assert fast.shape == plain.shape == (len(p.table), fast.shape[1])
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    assert lit._batched_normalize(p.backbone.preprocess_val) is not None  # the split applies to open_clip's
