"""WiSE-FT: the interpolated weights (1 - alpha) theta_zeroshot + alpha theta_finetuned."""

from __future__ import annotations

import torch

from clipood.commands.wise_ft import interpolate


def test_wise_ft_interpolation_formula():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor([1])}
    b = {"w": torch.tensor([4.0, -2.0]), "n": torch.tensor([7])}
    out = interpolate(a, b, 0.25)
    torch.testing.assert_close(out["w"], torch.tensor([1.0, 1.0]))  # 0.75 a + 0.25 b
    assert out["n"].item() == 7  # integer buffers are not interpolated


def _eval_cfg(shapes_root, tmp_path):
    from clipood.config import Config
    cfg = Config()
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.compute.device = "cpu"
    cfg.run.output_dir, cfg.run.name = str(tmp_path / "runs"), "wise"
    return cfg


def test_any_two_models_end_points_and_choice(trained_run, tiny_pretrained, shapes_root, tmp_path):
    """alpha 0 is model A (here the zero-shot folder), alpha 1 is model B (the run's export); the chosen
    alpha is the best mean accuracy over the training domains' 'out' splits."""
    import json
    import math

    from clipood.commands.wise_ft import validation_score, wise_ft_models, wise_ft_table
    run, res = wise_ft_models(tiny_pretrained, trained_run / "model", _eval_cfg(shapes_root, tmp_path),
                              [0.0, 0.5, 1.0], progress=False)
    trained = json.loads((trained_run / "results.json").read_text())
    for split, e in trained["final"].items():
        assert res["variants"]["alpha=1"][split]["accuracy"] == e["accuracy"], split
        assert res["variants"]["alpha=0"][split]["accuracy"] == trained["zeroshot"][split]["accuracy"], split
    scores = {a: validation_score(res["variants"][f"alpha={a:g}"], False) for a in (0.0, 0.5, 1.0)}
    best = max(scores.values())
    assert not math.isnan(best) and scores[res["selected_alpha"]] == best
    assert res["model_a"] == str(tiny_pretrained.resolve())
    assert (run.model_dir / "open_clip_model.safetensors").is_file()
    assert "(chosen)" in wise_ft_table(res)


def test_models_of_two_architectures_are_refused(trained_run, shapes_root, tmp_path):
    import json
    import shutil

    import pytest

    from clipood.commands.wise_ft import wise_ft_models
    from clipood.errors import ModelError
    other = tmp_path / "other"
    shutil.copytree(trained_run / "model", other)
    cfg = json.loads((other / "open_clip_config.json").read_text())
    cfg["model_cfg"]["embed_dim"] = cfg["model_cfg"]["embed_dim"] * 2
    (other / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="different architectures"):
        wise_ft_models(trained_run / "model", other, _eval_cfg(shapes_root, tmp_path), [0.5], progress=False)


def test_alphas_syntax():
    import pytest

    from clipood.commands.wise_ft import parse_alphas
    from clipood.errors import ClipoodError
    assert parse_alphas("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_alphas("0:1:0.1")[-1] == 1.0 and len(parse_alphas("0:1:0.1")) == 11
    assert parse_alphas("0,0.5,1") == [0.0, 0.5, 1.0]
    for bad in ("0:2:0.5", "a,b", "0:1:0", ""):
        with pytest.raises(ClipoodError, match="--alphas"):
            parse_alphas(bad)


def test_cli_table_and_plot(trained_run, tiny_pretrained, shapes_root, tmp_path):
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "clipood", "wise-ft", str(tiny_pretrained), str(trained_run / "model"),
                          "--root", str(shapes_root), "--holdout-domain", "sketch", "--alphas", "0:1:0.5",
                          "--workers", "0", "--device", "cpu", "--output-dir", str(tmp_path),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| alpha" in res.stdout and "alpha chosen: " in res.stdout and "(training-domain validation)" in res.stdout
    (run,) = tmp_path.glob("wise-ft-*")  # the default name says what the run is
    assert (run / "wise_ft.png").stat().st_size > 0 and (run / "results.json").is_file()


def test_sweep_wise_ft_base_from_the_spec(shapes_root):
    import pytest

    from clipood.errors import ConfigError
    from clipood.sweep import plan, spec_from_dict
    spec = spec_from_dict({"methods": ["wise-ft"], "datasets": [str(shapes_root)], "holdout": ["sketch"],
                           "wise_ft_base": "clipood", "overrides": {"model": {"arch": "clipood-tiny",
                                                                               "pretrained": "none"}}})
    runs = plan(spec)
    assert [r.method.name for r in runs] == ["clipood", "wise-ft"]
    assert runs[1].base == runs[0].name and runs[1].method.label == "WiSE-FT with CLIPood (MMS + BMA)"
    default = plan(spec_from_dict({"methods": ["wise-ft"], "datasets": [str(shapes_root)], "holdout": ["sketch"],
                                   "overrides": {"model": {"arch": "clipood-tiny", "pretrained": "none"}}}))
    assert [r.method.name for r in default] == ["finetune", "wise-ft"]
    # the report keys them apart: WiSE-FT on CLIPood is not WiSE-FT on plain fine-tuning
    assert runs[1].sidecar("s")["method"] == "wise-ft/clipood" and default[1].sidecar("s")["method"] == "wise-ft"
    with pytest.raises(ConfigError, match="'wise_ft_base' must be a training method with the class-text head"):
        spec_from_dict({"methods": ["wise-ft"], "datasets": [str(shapes_root)], "wise_ft_base": "erm-linear"})


def test_report_labels_wise_ft_by_its_base(tmp_path):
    """A WiSE-FT run is reported under the method it interpolates, or as two exported models."""
    import json

    from clipood.methods import method_label
    from clipood.reporting.records import read_run
    from clipood.reporting.table import methods_of
    assert method_label("wise-ft") == "WiSE-FT (fine-tune)"
    assert method_label("wise-ft/clipood") == "WiSE-FT with CLIPood (MMS + BMA)"
    results = {"kind": "wise-ft", "alphas": [0.0, 1.0], "domains": ["a", "b"], "train_domains": ["a"],
               "variants": {"alpha=0": {"b/in": {"accuracy": 0.5}}, "alpha=1": {"b/in": {"accuracy": 0.6}}}}
    records = []
    for name, side in (("on-clipood", {"method": "wise-ft/clipood"}), ("on-finetune", {"method": "wise-ft"}),
                       ("by-hand", None)):
        run = tmp_path / name
        run.mkdir()
        (run / "results.json").write_text(json.dumps(results))
        if side:
            (run / "sweep.json").write_text(json.dumps({"sweep": "s", "dataset": "d", "holdout": ["b"], "seed": 0,
                                                        "variant": {}, "base_to_new": False, **side}))
        records += read_run(run)
    assert methods_of(records) == ["wise-ft", "wise-ft/clipood", "wise-ft/models"]
    assert method_label("wise-ft/models") == "WiSE-FT (two exported models)"


def test_a_saved_zero_shot_model_is_the_zero_shot_end(shapes_root, tiny_pretrained, tmp_path):
    """zeroshot --save-model writes an exported model that evaluates as the zero-shot run did."""
    from clipood.commands import evaluate, zeroshot
    from clipood.config import Config, validate
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.data.root, cfg.data.workers, cfg.data.holdout_domains = str(shapes_root), 0, ["sketch"]
    cfg.compute.device = "cpu"
    cfg.run.output_dir, cfg.run.name = str(tmp_path), "zs"
    run, results = zeroshot(validate(cfg, training=False), progress=False, save_model=True)
    assert (run.model_dir / "clipood.json").is_file()
    again = evaluate(validate(cfg, training=False), run.path, None, progress=False)
    for split, entry in results["zeroshot"].items():
        assert again["final"][split]["accuracy"] == entry["accuracy"], split
    cfg.run.name = "zs-plain"
    plain, _ = zeroshot(validate(cfg, training=False), progress=False)
    assert not plain.model_dir.exists()  # nothing on disk unless asked
    from clipood.cli import main
    assert main(["zeroshot", "--root", str(shapes_root), "--arch", f"local-dir:{tiny_pretrained}", "--holdout-domain",
                 "sketch", "--workers", "0", "--device", "cpu", "--output-dir", str(tmp_path), "--name", "zs-cli",
                 "--save-model", "--no-progress"]) == 0
    assert (tmp_path / "zs-cli" / "model" / "open_clip_model.safetensors").is_file()


# ------------------------------------------------------------------ issue 23


def _cli(capsys, argv):
    from clipood.cli import main
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def _copy_model(trained_run, tmp_path, name):
    import shutil
    out = tmp_path / name
    shutil.copytree(trained_run / "model", out)
    return out


def _wise_argv(a, b, shapes_root, tmp_path, *extra):
    return ["wise-ft", str(a), str(b), "--root", str(shapes_root), "--holdout-domain", "sketch", "--workers", "0",
            "--alphas", "0,1", "--no-progress", "--output-dir", str(tmp_path / "runs"), *extra]


def test_a_nan_model_is_refused_by_every_command_case7(trained_run, shapes_root, tmp_path, capsys):
    from safetensors.torch import load_file, save_file
    nan = _copy_model(trained_run, tmp_path, "nan")
    sd = load_file(str(nan / "open_clip_model.safetensors"))
    sd["visual.proj"] = sd["visual.proj"].clone().fill_(float("nan"))
    save_file(sd, str(nan / "open_clip_model.safetensors"))
    img = str(next((shapes_root / "sketch").rglob("*.png")))
    for argv in (["eval", "--model", str(nan), "--root", str(shapes_root), "--workers", "0", "--no-progress"],
                 ["zeroshot", "--arch", f"local-dir:{nan}", "--root", str(shapes_root), "--workers", "0",
                  "--no-progress", "--output-dir", str(tmp_path / "runs")],
                 ["predict", "--model", str(nan), img, "--out", str(tmp_path / "p.csv"), "--no-progress"],
                 _wise_argv(trained_run, nan, shapes_root, tmp_path),
                 _wise_argv(nan, trained_run, shapes_root, tmp_path)):
        code, err = _cli(capsys, argv)
        errors = [ln for ln in err.splitlines() if ln.startswith("clipood: error:")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in err, (argv[0], err)
        assert "its weights hold NaN or inf (visual.proj: " in errors[0] and str(nan) in errors[0], errors[0]
    assert not (tmp_path / "p.csv").exists()
    assert not list((tmp_path / "runs").glob("*/results.json")) if (tmp_path / "runs").exists() else True


def test_damaged_model_files_are_one_line_case7c(trained_run, shapes_root, tmp_path, capsys):
    trunc = _copy_model(trained_run, tmp_path, "trunc")
    weights = trunc / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    code, err = _cli(capsys, _wise_argv(trained_run, trunc, shapes_root, tmp_path))
    assert code == 2 and err == f"clipood: error: {weights}: not a readable weights file (Error while deserializing " \
                                f"header: invalid header length); export the model again" or \
        (code == 2 and f"{weights}: not a readable weights file" in err and len(err.splitlines()) == 1), err
    badcfg = _copy_model(trained_run, tmp_path, "badcfg")
    (badcfg / "open_clip_config.json").write_text("not json")
    code, err = _cli(capsys, _wise_argv(trained_run, badcfg, shapes_root, tmp_path))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"clipood: error: MODEL_B: {badcfg / 'open_clip_config.json'} is not valid JSON" in err


def test_alphas_are_bounded_before_any_list_is_made_case7c(capsys):
    import time

    import pytest

    from clipood.commands.wise_ft import MAX_ALPHAS, parse_alphas
    from clipood.errors import ClipoodError
    t0 = time.time()
    with pytest.raises(ClipoodError, match=rf"--alphas: '0:1:1e-12' gives 1e\+12 alphas; at most {MAX_ALPHAS}"):
        parse_alphas("0:1:1e-12")
    with pytest.raises(ClipoodError, match="is not START:STOP:STEP"):
        parse_alphas("0:inf:0.1")
    with pytest.raises(ClipoodError, match="gives an alpha twice"):
        parse_alphas("0,0.5,0.5")
    assert time.time() - t0 < 1
    assert len(parse_alphas("0:1:0.001")) == MAX_ALPHAS


def test_a_rerun_after_a_kill_logs_each_alpha_once_case5d(trained_run, tiny_pretrained, shapes_root, tmp_path,
                                                          monkeypatch, capsys):
    import json

    import pytest

    from clipood.commands import wise_ft
    real, calls = wise_ft.evaluate_model, {"n": 0}

    def dies_at_the_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as a kill would stop it: two alphas logged
        return real(*a, **k)
    monkeypatch.setattr(wise_ft, "evaluate_model", dies_at_the_third)
    cfg = _eval_cfg(shapes_root, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        wise_ft.wise_ft_models(tiny_pretrained, trained_run / "model", cfg, [0.0, 0.25, 0.5, 0.75, 1.0],
                               progress=False)
    monkeypatch.setattr(wise_ft, "evaluate_model", real)
    run, _ = wise_ft.wise_ft_models(tiny_pretrained, trained_run / "model", _eval_cfg(shapes_root, tmp_path),
                                    [0.0, 0.25, 0.5, 0.75, 1.0], progress=False)
    alphas = [json.loads(ln)["alpha"] for ln in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert "held a run that stopped before its first checkpoint; starting afresh (removed metrics.jsonl)" in \
        capsys.readouterr().err


def test_wise_ft_of_a_flyp_run_mixes_the_text_tower_too(tiny_pretrained, shapes_root, tmp_path):
    """FLYP trains both towers: at alpha 1 the classifier is the FLYP model's own class texts (encoded by its
    text tower, as load_classifier encodes them), at alpha 0 the zero-shot ones; the end points' accuracies are
    the FLYP run's and zero-shot's."""
    import json

    from clipood.commands import load_classifier, train
    from clipood.commands.wise_ft import interpolate, load_interpolated, run_wise_ft
    from clipood.methods import METHODS
    from clipood.model.finite import load_weights
    from clipood.training.experiment import build_model
    cfg = METHODS["flyp"].configure(_eval_cfg(shapes_root, tmp_path))
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    cfg.train.steps, cfg.train.batch_size, cfg.train.checkpoint_every, cfg.optim.lr = 3, 2, 0, 1e-2
    cfg.run.name = "flyp"
    flyp, _ = train(cfg, progress=False)
    trained = json.loads((flyp.path / "results.json").read_text())
    cfg = _eval_cfg(shapes_root, tmp_path)  # WiSE-FT scores by class texts, whatever trained them
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{tiny_pretrained}", "auto"
    _, res = run_wise_ft(flyp.path, cfg, [0.0, 1.0], progress=False)
    for split, e in trained["final"].items():
        assert res["variants"]["alpha=1"][split]["accuracy"] == e["accuracy"], split
        assert res["variants"]["alpha=0"][split]["accuracy"] == trained["zeroshot"][split]["accuracy"], split

    exp = build_model(cfg)
    zero = exp.class_weights().weight
    theta0 = {k: v.detach().clone() for k, v in exp.backbone.model.state_dict().items()}
    theta1 = load_weights(flyp.path / "model" / "open_clip_model.safetensors", "cpu")
    load_interpolated(exp, interpolate(theta0, theta1, 1.0))
    own = load_classifier(flyp.path).head
    assert torch.allclose(exp.class_weights().weight, own, atol=1e-5)
    assert not torch.allclose(zero, own, atol=1e-3)  # the text tower moved
