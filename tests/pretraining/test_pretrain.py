"""`clipood pretrain`: CLIP's loss goes down, the held-out domain never enters, the export loads
through the backbone path with the same features, installed tags resolve, and resume is exact."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from clipood.errors import ConfigError, DataError, Interrupted, ModelError
from clipood.rundir import list_checkpoints

TINY = "clipood-tiny"


@pytest.fixture(scope="module")
def captions_csv(shapes_root):
    """captions.csv beside the shapes images: 'a star drawn as a sketch', domain = style."""
    path = shapes_root / "captions.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "title", "domain"])
        for img in sorted(shapes_root.glob("*/*/*.png")):
            style, shape = img.parent.parent.name, img.parent.name
            w.writerow([img.relative_to(shapes_root).as_posix(), f"a {shape} drawn as a {style}", style])
    return path


def _cfg(csv_path, out, *, steps=40, name="run", **data):
    from clipood.pretraining.config import PretrainConfig, validate_pretrain
    cfg = PretrainConfig()
    cfg.model.arch = TINY
    cfg.data.csv, cfg.data.workers, cfg.data.val_size = str(csv_path), 0, 16
    cfg.data.exclude_domains = ["sketch"]
    for k, v in data.items():
        setattr(cfg.data, k, v)
    cfg.train.steps, cfg.train.batch_size, cfg.train.eval_every = steps, 32, 0
    cfg.train.checkpoint_every, cfg.train.log_every = 0, 5
    cfg.optim.lr, cfg.optim.warmup_steps = 1e-3, 4
    cfg.run.output_dir, cfg.run.name = str(out), name
    return validate_pretrain(cfg)


@torch.no_grad()
def _features(backbone, table, rows):
    from clipood.data.images import load_rgb
    model = backbone.model.eval()
    images = torch.stack([backbone.preprocess_val(load_rgb(table.paths[i])) for i in rows])
    texts = backbone.tokenizer([table.captions[i] for i in rows])
    return model.encode_image(images), model.encode_text(texts), float(model.logit_scale.exp())


def _one_per_caption(table, rows):
    """Rows with distinct captions (a contrastive batch without duplicate texts)."""
    seen, out = set(), []
    for i in rows:
        if table.captions[i] not in seen:
            seen.add(table.captions[i])
            out.append(i)
    return out


def test_pretraining_lowers_clip_loss_excludes_domain_and_exports_the_same_model(captions_csv, tmp_path,
                                                                                 clip_loss):
    from clipood.model import load_backbone
    from clipood.pretraining import trainer

    cfg = _cfg(captions_csv, tmp_path)
    table = trainer.read_table(cfg)
    all_rows = list(csv.DictReader(open(captions_csv, encoding="utf-8")))
    n_sketch = sum(r["domain"] == "sketch" for r in all_rows)
    assert n_sketch > 0
    assert len(table) == len(all_rows) - n_sketch
    assert "sketch" not in table.domains and not any("/sketch/" in p for p in table.paths)
    assert table.excluded == {"sketch": n_sketch}

    run = trainer.create_run(cfg)
    p = trainer.build(cfg, table)
    probe = _one_per_caption(table, p.train_rows)
    before = float(clip_loss(*_features(p.backbone, table, probe)))
    drawn = {i for batch in trainer.train_loader(p, 0).batch_sampler for i, _ in batch}
    outcome = trainer.fit(p, run, progress=False)
    assert {table.domains[i] for i in drawn} == {"photo", "painting", "cartoon"}
    assert not drawn & set(p.val_rows), "held-out pairs are never trained on"

    after = float(clip_loss(*_features(p.backbone, table, probe)))
    assert after < 0.8 * before, (before, after)
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == cfg.train.steps // cfg.train.log_every and outcome["final_train_loss"] == losses[-1]

    record = trainer.provenance(p, outcome, trainer.evaluate_pairs(p, p.val_rows, trainer.BadImages("fail", [])))
    trainer.export(p, run.model_dir, record)
    loaded = load_backbone(f"local-dir:{run.model_dir}")
    assert loaded.preprocess_cfg["size"] == p.backbone.preprocess_cfg["size"]
    rows = p.val_rows[:8]
    mine, theirs = _features(p.backbone, table, rows), _features(loaded, table, rows)
    torch.testing.assert_close(theirs[0], mine[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(theirs[1], mine[1], rtol=0, atol=1e-6)
    assert theirs[2] == pytest.approx(mine[2])
    saved = json.loads((run.model_dir / "clipood_pretrain.json").read_text())
    assert saved["data"]["excluded_domains"] == {"sketch": n_sketch}
    assert saved["data"]["train_pairs"] + saved["data"]["validation_pairs"] == len(table)
    assert set(saved["data"]["train_pairs_per_domain"]) == {"photo", "painting", "cartoon"}


def test_held_out_pairs_are_stable_and_disjoint(captions_csv):
    from clipood.pretraining.captions import read_caption_table, split_validation
    table = read_caption_table(captions_csv)
    train, val = split_validation(table, 16)
    assert len(val) == 16 and not set(train) & set(val) and len(train) + len(val) == len(table)
    fewer = read_caption_table(captions_csv, exclude_domains=["photo"])
    _, val2 = split_validation(fewer, 16)
    # rows that stay keep their membership: the split hashes paths, not positions
    kept_val = {table.paths[i] for i in val if table.domains[i] != "photo"}
    assert kept_val and kept_val <= {fewer.paths[i] for i in val2}


def test_install_as_tag_loads_through_the_backbone_path(captions_csv, tmp_path, monkeypatch):
    from clipood.model import load_backbone
    from clipood.model.weights import clipood_tags
    from clipood.pretraining.trainer import run_pretrain

    monkeypatch.setenv("CLIPOOD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="clipood pretrain"):
        load_backbone("clipood-emoji-s", "emoji")  # a known tag not built yet says how to make it
    cfg = _cfg(captions_csv, tmp_path / "runs", steps=6)
    cfg.run.install_as = "shapes-test"
    run, results = run_pretrain(cfg, progress=False)
    assert "shapes-test" in clipood_tags(TINY)
    tagged = load_backbone(TINY, "shapes-test")
    exported = load_file(str(run.model_dir / "open_clip_model.safetensors"))
    for k, v in tagged.model.state_dict().items():
        assert torch.equal(v, exported[k]), k
    record = json.loads((tmp_path / "cache" / "pretrained" / TINY / "shapes-test" / "clipood_pretrain.json")
                        .read_text())
    assert record["data"]["excluded_domains"] == {"sketch": results["data"]["excluded_domains"]["sketch"]}


def test_resume_after_sigterm_is_bit_exact(captions_csv, tmp_path, monkeypatch):
    from clipood.pretraining import trainer

    # tag dropout on: its per-step draws must also come back the same after a resume
    _, _ = trainer.run_pretrain(_cfg(captions_csv, tmp_path, steps=12, name="unbroken", caption_tag_dropout=0.5),
                                progress=False)

    own_csv = captions_csv.with_name("captions-resume.csv")  # beside the images: paths are relative to it
    own_csv.write_bytes(captions_csv.read_bytes())
    cfg = _cfg(own_csv, tmp_path, steps=12, name="broken", caption_tag_dropout=0.5)
    cfg.train.checkpoint_every = 100
    real_step, calls = trainer.train_step, {"n": 0}

    def step_then_sigterm(p, images, idx, texts):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # the loop checkpoints after this step and stops
        return real_step(p, images, idx, texts)

    monkeypatch.setattr(trainer, "train_step", step_then_sigterm)
    with pytest.raises(Interrupted, match="--resume"):
        trainer.run_pretrain(cfg, progress=False)
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert [s for s, _ in list_checkpoints(tmp_path / "broken")] == [7]

    run, cfg2 = trainer.open_run(tmp_path / "broken")
    original = own_csv.read_bytes()
    own_csv.write_bytes(original + original.splitlines(keepends=True)[1])  # one more row: another data order
    with pytest.raises(trainer.ClipoodError, match="changed since this run started"):
        trainer.run_pretrain(cfg2, resume=run, progress=False)
    own_csv.write_bytes(original)
    trainer.run_pretrain(cfg2, resume=run, progress=False)
    a = load_file(str(tmp_path / "unbroken" / "model" / "open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "broken" / "model" / "open_clip_model.safetensors"))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    records = [json.loads(line) for line in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [5, 10, 12]
    with pytest.raises(Exception, match="finished"):
        trainer.open_run(tmp_path / "broken")


def test_bad_tables_and_options_fail_with_one_clear_line(captions_csv, tmp_path):
    from clipood.cli import build_parser, config_from_args, main
    from clipood.pretraining.captions import read_caption_table
    from clipood.pretraining.config import PretrainConfig, validate_pretrain

    with pytest.raises(DataError, match="'nosuch' is not a domain.*domains: cartoon, painting, photo, sketch"):
        read_caption_table(captions_csv, exclude_domains=["nosuch"])
    with pytest.raises(DataError, match="no column 'caption'.*--csv-caption-key"):
        read_caption_table(captions_csv, caption_key="caption")
    no_domain = tmp_path / "nodomain.tsv"
    no_domain.write_text("filepath\ttitle\n" + "".join(
        f"{r['filepath']}\t{r['title']}\n" for r in csv.DictReader(open(captions_csv, encoding="utf-8"))))
    with pytest.raises(DataError, match="no 'domain' column"):
        read_caption_table(no_domain, sep="\t", exclude_domains=["sketch"])
    missing = tmp_path / "missing.csv"
    missing.write_text("filepath,title\nnope.png,a thing\nnope2.png,another\n")
    with pytest.raises(DataError, match="line 2: image not found.*2 missing"):
        read_caption_table(missing)

    args = build_parser().parse_args(["pretrain", "--csv", str(captions_csv), "--exclude-domain", "sketch",
                                      "--exclude-domain", "photo", "--steps", "5", "--adam-betas", "0.9", "0.95"])
    cfg, _ = config_from_args(args, PretrainConfig())
    assert cfg.data.exclude_domains == ["sketch", "photo"] and cfg.optim.betas == [0.9, 0.95]
    assert cfg.train.batch_size == PretrainConfig().train.batch_size
    cfg.optim.warmup_steps = 5
    with pytest.raises(ConfigError, match="--warmup-steps"):
        validate_pretrain(cfg)
    for key, flag in (("zoom_out", "--zoom-out"), ("grayscale", "--grayscale")):
        bad, _ = config_from_args(args, PretrainConfig())
        setattr(bad.data, key, 1.5)
        with pytest.raises(ConfigError, match=f"{flag}.*0 <= p <= 1"):
            validate_pretrain(bad)
    assert main(["pretrain", "--csv", str(tmp_path / "none.csv")]) == 2
    assert main(["pretrain", "--csv", str(captions_csv), "--arch", "local-dir:/x", "--install-as", "t"]) == 2


def test_pretrain_options_doc_is_generated_from_the_code():
    from pathlib import Path

    from clipood.pretraining.config import options_doc
    doc = Path(__file__).parents[2] / "docs" / "pretrain-configuration.md"
    assert doc.read_text(encoding="utf-8") == options_doc(), \
        "regenerate: python -m clipood.pretraining.config > docs/pretrain-configuration.md"


def test_emoji_tag_recipe_excludes_the_benchmarks_held_out_domain():
    from clipood.data.emoji import DEFAULT_HOLDOUT
    from clipood.model.weights import CLIPOOD_TAGS
    recipe = CLIPOOD_TAGS[("clipood-emoji-s", "emoji")].recipe
    assert f"--exclude-domain {DEFAULT_HOLDOUT}" in recipe and "--install-as emoji" in recipe


def test_caption_tag_dropout_keeps_the_name_and_drops_tags_at_the_given_rate():
    import random

    from clipood.pretraining.captions import drop_tags
    caption = "a dog, pet, puppy, animal, face"
    rng = random.Random(0)
    assert drop_tags(caption, 0.0, rng) == caption and drop_tags(caption, 1.0, rng) == "a dog"
    kept = [drop_tags(caption, 0.3, rng).split(", ") for _ in range(4000)]
    assert all(parts[0] == "a dog" for parts in kept)
    assert all(parts[1:] == [t for t in ["pet", "puppy", "animal", "face"] if t in parts[1:]] for parts in kept)
    rate = sum(len(parts) - 1 for parts in kept) / (4 * len(kept))
    assert abs(rate - 0.7) < 0.03


def test_pretrain_resume_refuses_an_edited_option_case1(captions_csv, tmp_path, monkeypatch):
    """Issue 23, case 1 for pretraining: config.yaml edited before --resume is refused, naming the option."""
    from clipood.pretraining import trainer
    cfg = _cfg(captions_csv, tmp_path, steps=8, name="edited")
    cfg.train.checkpoint_every = 100
    real_step, calls = trainer.train_step, {"n": 0}

    def step_then_sigterm(p, images, idx, texts):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(p, images, idx, texts)

    monkeypatch.setattr(trainer, "train_step", step_then_sigterm)
    with pytest.raises(Interrupted):
        trainer.run_pretrain(cfg, progress=False)
    monkeypatch.setattr(trainer, "train_step", real_step)
    path = tmp_path / "edited" / "config.yaml"
    path.write_text(path.read_text().replace("lr: 0.001", "lr: 0.5", 1))
    run, edited = trainer.open_run(tmp_path / "edited")
    with pytest.raises(trainer.ClipoodError, match=r"--lr \(optim.lr\) was 0.001, is now 0.5"):
        trainer.run_pretrain(edited, resume=run, progress=False)
    assert not (tmp_path / "edited" / "results.json").exists()


def test_a_caption_table_with_a_byte_order_mark_case9(captions_csv, tmp_path):
    from clipood.pretraining.captions import read_caption_table
    bom = captions_csv.with_name("captions-bom.csv")  # beside the images: paths are relative to it
    bom.write_bytes(b"\xef\xbb\xbf" + captions_csv.read_bytes())
    assert len(read_caption_table(bom)) == len(read_caption_table(captions_csv))


def test_a_fifo_in_the_caption_table_is_named_case5b(captions_csv, tmp_path):
    from clipood.pretraining.captions import read_caption_table
    os.mkfifo(tmp_path / "pipe.png")
    table = tmp_path / "t.csv"
    table.write_text(f"filepath,title\n{tmp_path / 'pipe.png'},a pipe\n")
    with pytest.raises(DataError, match=r"line 2: .*pipe.png is a FIFO \(named pipe\), not an image file"):
        read_caption_table(table)
