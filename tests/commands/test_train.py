"""End to end: train the tiny open_clip model on generated multi-domain images, reload, re-evaluate."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from clipood.cli import main
from clipood.commands import train as run_train


def _train(cfg, tiny_pretrained, **changes):
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return run_train(cfg, progress=False)


def test_train_clipood_changes_image_tower_only_and_reloads(tiny_config, tiny_pretrained, capsys):
    cfg = tiny_config
    cfg.data.holdout_domains = ["sketch"]
    run, results = _train(cfg, tiny_pretrained)

    for name in ("config.yaml", "metrics.jsonl", "results.json", "model/open_clip_model.safetensors",
                 "model/open_clip_config.json", "model/clipood.json"):
        assert (run.path / name).is_file(), name
    lines = [json.loads(ln) for ln in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in ln for ln in lines) and any(ln.get("final") for ln in lines)
    assert results["train_domains"] == ["cartoon", "painting", "photo"]
    assert {e["role"] for e in results["final"].values()} == {"test", "oracle", "val"}

    before = load_file(str(tiny_pretrained / "open_clip_model.safetensors"))
    after = load_file(str(run.path / "model/open_clip_model.safetensors"))
    assert before.keys() == after.keys()
    text_keys = [k for k in before if not k.startswith("visual.")]
    visual_keys = [k for k in before if k.startswith("visual.")]
    assert text_keys and all(torch.equal(before[k], after[k]) for k in text_keys)
    changed = [k for k in visual_keys if not torch.equal(before[k], after[k])]
    assert len(changed) == len([k for k in visual_keys]), "every image-tower tensor trains by default"

    # The saved averaged model reloads (as an open_clip local-dir) and gives the same accuracy.
    out = run.path / "reeval.json"
    code = main(["eval", "--model", str(run.path / "model"), "--root", cfg.data.root, "--holdout-domain", "sketch",
                 "--workers", "0", "--no-progress", "--out", str(out)])
    assert code == 0
    reeval = json.loads(out.read_text())["final"]
    for name, entry in results["final"].items():
        assert reeval[name]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9), name
        assert reeval[name]["n"] == entry["n"]
    assert "| sketch/in" in capsys.readouterr().out


def test_exported_model_is_the_bma_of_the_trajectory(tiny_config, tiny_pretrained, monkeypatch):
    """Record theta_0..theta_T during a real fit; the export is sum_t alpha_t theta_t / sum_t alpha_t (Eq. 5-7)."""
    from scipy.stats import beta as beta_dist

    from clipood.training import experiment as experiment_mod
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.train.steps, cfg.averaging.beta, cfg.optim.lr = 6, 0.5, 5e-3
    trajectory = []
    real_build = experiment_mod.build_experiment

    def recording_build(*args, **kwargs):
        exp = real_build(*args, **kwargs)
        names = {id(p): n for n, p in exp.classifier.visual.named_parameters()}
        trajectory.append({names[id(t)]: t.detach().clone() for t in exp.tracked})  # theta_0
        real_update = exp.averager.update

        def update(step):
            trajectory.append({names[id(t)]: t.detach().clone() for t in exp.tracked})
            return real_update(step)
        exp.averager.update = update
        return exp

    monkeypatch.setattr("clipood.commands.run.build_experiment", recording_build)
    run, _ = run_train(cfg, progress=False)
    T = cfg.train.steps
    assert len(trajectory) == T + 1
    alphas = [beta_dist.pdf((t + 0.5) / (T + 1), 0.5, 0.5) for t in range(T + 1)]
    exported = load_file(str(run.path / "model" / "open_clip_model.safetensors"))
    moved = 0
    for name in trajectory[0]:
        expected = sum(a * th[name].double() for a, th in zip(alphas, trajectory)) / sum(alphas)
        torch.testing.assert_close(exported[f"visual.{name}"].double(), expected, rtol=1e-5, atol=1e-6)
        moved += not torch.allclose(trajectory[-1][name], trajectory[0][name])
    assert moved > 0, "the weights moved, so the average differs from the last weights"


@pytest.mark.parametrize("loss,averaging", [("linear", "none"), ("metric_softmax", "ema"), ("fixed_margin", "uniform")])
def test_baselines_train_and_reload(tiny_config, tiny_pretrained, loss, averaging):
    cfg = tiny_config
    cfg.loss.name, cfg.averaging.name = loss, averaging
    run, results = _train(cfg, tiny_pretrained, train__steps=4)
    scale = float(load_file(str(tiny_pretrained / "open_clip_model.safetensors"))["logit_scale"].exp())
    assert results["method"] == {"tuning": "image", "loss": loss, "averaging": averaging, "lambda": 0.3, "beta": 0.5,
                                 "temperature": 1 / scale, "norm_layers": "frozen"}
    assert (run.path / "model/clipood_head.safetensors").is_file() == (loss == "linear")
    out = run.path / "reeval.json"
    assert main(["eval", "--model", str(run.path / "model"), "--root", cfg.data.root, "--workers", "0",
                 "--no-progress", "--out", str(out)]) == 0
    reeval = json.loads(out.read_text())["final"]
    for name, entry in results["final"].items():
        assert reeval[name]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9)


def test_base_to_new_reports_base_new_h(tiny_config, tiny_pretrained):
    cfg = tiny_config
    cfg.data.base_to_new = True
    cfg.data.holdout_domains = ["photo"]
    run, results = _train(cfg, tiny_pretrained, train__steps=3)
    for entry in list(results["final"].values()) + list(results["zeroshot"].values()):
        assert {"base", "new", "H", "accuracy"} <= entry.keys()
        b, n = entry["base"], entry["new"]
        assert entry["H"] == pytest.approx(0 if b + n == 0 else 2 * b * n / (b + n))
    assert results["num_classes"] == 8


def test_trainable_last_groups_freezes_the_rest(tiny_config, tiny_pretrained):
    cfg = tiny_config
    cfg.model.trainable = "last:1"  # ViT: the projection only
    run, _ = _train(cfg, tiny_pretrained, train__steps=3)
    before = load_file(str(tiny_pretrained / "open_clip_model.safetensors"))
    after = load_file(str(run.path / "model/open_clip_model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"visual.proj"}


def test_fit_runs_in_memory_without_a_run_directory(tiny_config, tiny_pretrained, tmp_path):
    import clipood
    cfg = tiny_config
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.run.output_dir = str(tmp_path / "nowhere")
    exp = clipood.build_experiment(cfg)
    before = [t.detach().clone() for t in exp.tracked]
    clipood.fit(exp)  # no run: nothing logged or checkpointed
    assert exp.averager.last_step == cfg.train.steps
    assert any(not torch.equal(a, b) for a, b in zip(before, exp.tracked))
    assert not (tmp_path / "nowhere").exists()
