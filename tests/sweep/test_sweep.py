"""Sweeps: planning, interruption and continuation, parallel runs, WiSE-FT (tiny model, generated images)."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics

import pytest
import yaml

from clipood.cli import main
from clipood.config import save_yaml
from clipood.errors import ConfigError, Interrupted
from clipood.methods import METHODS
from clipood.sweep import load_spec, plan, run_sweep, spec_from_dict
from clipood.training import loop

STEPS = 3


def _spec(tmp_path, root, tiny_pretrained, **changes) -> dict:
    spec = {
        "name": "test", "output_dir": str(tmp_path / "runs"),
        "methods": ["finetune", "clipood"],
        "datasets": [{"name": "shapes", "root": str(root)}],
        "holdout": ["sketch", "photo"], "seeds": [0, 1],
        "overrides": {"model": {"arch": f"local-dir:{tiny_pretrained}", "pretrained": "auto"},
                      "data": {"workers": 0}, "optim": {"lr": 1e-3},
                      "train": {"steps": STEPS, "batch_size": 4, "checkpoint_every": 0, "log_every": 1},
                      "eval": {"batch_size": 64}},
    }
    spec.update(changes)
    return spec


def test_plan_names_variants_dependencies_and_errors(shapes_root, tiny_pretrained, tmp_path):
    spec = spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, methods=["zeroshot", "clipood", "wise-ft"],
                                holdout="all", grid={"lambda": [0.1, 0.3]}))
    runs = plan(spec)
    names = [r.name for r in runs]
    assert names == [r.name for r in plan(spec)], "names are deterministic"
    assert len(set(names)) == len(names)
    held = sorted({r.holdout for r in runs})
    assert held == [("cartoon",), ("painting",), ("photo",), ("sketch",)]  # 'all': every domain in turn
    per_domain = [r for r in runs if r.holdout == ("sketch",)]
    by_method = {m: [r for r in per_domain if r.method.name == m]
                 for m in ("zeroshot", "finetune", "clipood", "wise-ft")}
    assert len(by_method["zeroshot"]) == 1  # nothing random, no lambda: one evaluation
    assert len(by_method["finetune"]) == 2  # added for WiSE-FT; lambda does not apply: one variant x 2 seeds
    assert len(by_method["clipood"]) == 4  # 2 lambdas x 2 seeds
    assert {r.variant.get("loss.margin_lambda") for r in by_method["clipood"]} == {0.1, 0.3}
    order = [r.name for r in per_domain]
    for w in by_method["wise-ft"]:
        assert w.base in order and order.index(w.base) < order.index(w.name)
    assert "shapes-clipood-sketch-lambda0.1-seed1" in names
    c = by_method["clipood"][0].cfg
    assert (c.loss.name, c.averaging.name, c.data.holdout_domains, c.train.steps) == ("mms", "bma", ["sketch"], STEPS)

    for bad, expected in [({"methods": ["nope"]}, "method 'nope' is unknown"),
                          ({"grid": {"lamda": [1]}}, "unknown option 'lamda'"),
                          ({"holdout": ["oil"]}, "'oil' is not a domain"),
                          ({"seeds": 0}, "'seeds: 0' must be at least 1"),
                          ({"colour": 1}, "unknown key(s) colour")]:
        with pytest.raises(ConfigError) as e:
            plan(spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, **bad)))
        assert expected in str(e.value) and "\n" not in str(e.value)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_interrupted_sweep_continues_without_repeating_finished_runs(shapes_root, tiny_pretrained, tmp_path,
                                                                      monkeypatch, capsys):
    """Acceptance: 2 methods x 2 held-out domains x 2 seeds, interrupted mid-run, rerun to completion."""
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(tmp_path, shapes_root, tiny_pretrained)))
    spec = load_spec(spec_file)
    runs = plan(spec)
    assert len(runs) == 8

    real_step = loop.train_step
    calls = {"n": 0}

    def step_then_sigterm(*args, **kwargs):  # SIGTERM during the 3rd run's 2nd step, as a pre-emption would
        calls["n"] += 1
        out = real_step(*args, **kwargs)
        if calls["n"] == 2 * STEPS + 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(loop, "train_step", step_then_sigterm)
    with pytest.raises(Interrupted, match="rerun the same sweep"):
        run_sweep(spec, progress=False)
    monkeypatch.setattr(loop, "train_step", real_step)

    finished = [r for r in runs if r.status() == "finished"]
    assert [r.name for r in finished] == [r.name for r in runs[:2]]
    killed = runs[2]
    assert killed.status() == "unfinished" and list((killed.path / "checkpoints").iterdir())
    # A run killed before its first checkpoint: only its config and a stale metrics line exist.
    planted = runs[5]
    planted.path.mkdir(parents=True)
    save_yaml(planted.cfg, planted.path / "config.yaml")
    (planted.path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 99.0}) + "\n")
    mtimes = {r.name: (r.path / "results.json").stat().st_mtime_ns for r in finished}

    steps = {"n": 0}

    def counting_step(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", counting_step)
    ended = []
    outcome = run_sweep(spec, progress=False, on_run_end=lambda r, o: ended.append(r.name))
    assert outcome.skipped == [r.name for r in finished]
    assert ended == outcome.executed == [r.name for r in runs[2:]]
    assert sorted(outcome.resumed) == sorted([killed.name, planted.name])
    assert steps["n"] == (STEPS - 2) + 5 * STEPS  # the killed run continued from step 2, nothing else repeated
    assert {r.name: (r.path / "results.json").stat().st_mtime_ns for r in finished} == mtimes
    assert all(r.status() == "finished" for r in runs)
    logged = [json.loads(ln) for ln in (planted.path / "metrics.jsonl").read_text().splitlines()]
    loss_steps = [e["step"] for e in logged if "loss" in e]
    assert loss_steps == list(range(1, STEPS + 1)) and 99.0 not in [e.get("loss") for e in logged]
    killed_steps = [json.loads(ln)["step"] for ln in (killed.path / "metrics.jsonl").read_text().splitlines()
                    if "loss" in json.loads(ln)]
    assert killed_steps == list(range(1, STEPS + 1))

    # A third run of the same spec through the CLI does nothing and prints the table with mean ± std.
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert main(["sweep", str(spec_file), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "8 finished and skipped" in out.err and "Model selection" in out.out
    lines = out.out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("### Table 1 layout: shapes"))
    header = _cells(lines[start + 2])
    assert header == ["method", "photo", "sketch", "Avg"]
    table = []
    for ln in lines[start + 4:]:
        if not ln.startswith("|"):
            break
        table.append(_cells(ln))
    rows = {cells[0]: cells[1:] for cells in table}
    assert set(rows) == {"zero-shot", "fine-tune (softmax)", "CLIPood (MMS + BMA)"}
    for method, cells in rows.items():
        assert all(re.fullmatch(r"\d+\.\d ± \d+\.\d", c) for c in cells), (method, cells)
    # Every cell is the mean ± std over the two seeds of the runs' own results.
    for method, name in (("CLIPood (MMS + BMA)", "clipood"), ("fine-tune (softmax)", "finetune")):
        acc = {(r.holdout[0], r.seed): json.loads((r.path / "results.json").read_text())["final"][f"{r.holdout[0]}/in"]
               ["accuracy"] for r in runs if r.method.name == name}
        for col, dom in ((0, "photo"), (1, "sketch")):
            vals = [100 * acc[(dom, s)] for s in (0, 1)]
            assert rows[method][col] == f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f}"
        avgs = [100 * (acc[("photo", s)] + acc[("sketch", s)]) / 2 for s in (0, 1)]
        assert rows[method][2] == f"{statistics.fmean(avgs):.1f} ± {statistics.stdev(avgs):.1f}"

    # The same output folder with a changed spec is refused instead of mixing configurations.
    changed = _spec(tmp_path, shapes_root, tiny_pretrained)
    changed["overrides"]["train"]["steps"] = STEPS + 1
    with pytest.raises(ConfigError, match="train.steps"):
        run_sweep(spec_from_dict(changed), progress=False)


def test_parallel_sweep_and_wise_ft_endpoints(shapes_root, tiny_pretrained, tmp_path):
    """--jobs 2: each run in its own process; WiSE-FT afterwards, whose alpha = 0 / 1 are zero-shot / fine-tuned."""
    spec = spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, methods=["zeroshot", "wise-ft"],
                                holdout=["sketch"], seeds=[0], wise_ft_alphas=[0.0, 0.5, 1.0]))
    runs = plan(spec)
    assert [r.method.name for r in runs] == ["zeroshot", "finetune", "wise-ft"]
    outcome = run_sweep(spec, jobs=2, progress=False)
    assert outcome.failed == {} and sorted(outcome.executed) == sorted(r.name for r in runs)
    logs = tmp_path / "runs" / ".sweep" / "logs"
    assert sorted(p.stem for p in logs.iterdir()) == sorted(r.name for r in runs[:2])

    zs, ft, wise = (json.loads((r.path / "results.json").read_text()) for r in runs)
    for split, entry in zs["zeroshot"].items():
        assert wise["variants"]["alpha=0"][split]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9)
    for split, entry in ft["final"].items():
        assert wise["variants"]["alpha=1"][split]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9)
    assert wise["selected_alpha"] in (0.0, 0.5, 1.0) and (runs[2].path / "model" / "open_clip_config.json").is_file()

    again = run_sweep(spec, jobs=2, progress=False)
    assert again.executed == [] and sorted(again.skipped) == sorted(r.name for r in runs)


def test_bundled_specs_and_docs_cover_every_method():
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    specs = sorted((repo / "configs").glob("*.yaml"))
    assert len(specs) >= 6
    used = set()
    for path in specs:
        spec = load_spec(path)  # known methods, keys and grid options
        assert spec.methods and spec.datasets, path.name
        used.update(spec.methods)
    docs = (repo / "docs" / "experiments.md").read_text()
    for name in METHODS:
        assert f"`{name}`" in docs, name
        assert name in used, f"no bundled spec runs {name}"
    for path in specs:
        assert f"configs/{path.name}" in docs, path.name


def test_a_sweep_with_relative_paths_is_rerun_as_the_same_runs(shapes_root, tiny_pretrained, tmp_path, monkeypatch):
    """Run folders store absolute paths; a rerun from the same directory must see the same options."""
    import shutil
    shutil.copytree(shapes_root, tmp_path / "shapes")
    shutil.copytree(tiny_pretrained, tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, "shapes", "tiny", methods=["finetune"], holdout=["sketch"], seeds=[0], output_dir="runs")
    spec["overrides"]["model"]["arch"] = "local-dir:tiny"
    first = run_sweep(spec_from_dict(spec), progress=False)
    assert first.executed and not first.failed
    again = run_sweep(spec_from_dict(spec), progress=False)
    assert again.skipped == first.executed and not again.failed


def test_a_sweep_profile_sits_under_its_overrides(shapes_root, tmp_path):
    spec = spec_from_dict({"methods": ["clipood"], "datasets": [str(shapes_root)], "holdout": ["sketch"],
                           "profile": "official", "overrides": {"optim": {"grad_clip": 2.0}},
                           "output_dir": str(tmp_path / "runs")})
    cfg = plan(spec)[0].cfg
    assert cfg.train.master_weights == "fp16" and cfg.averaging.precision == "fp16"
    assert cfg.data.protocol == "official" and cfg.train.sampling == "replacement"
    assert cfg.optim.grad_clip == 2.0  # the spec's overrides win over the profile
    for name in ("table1_domainbed", "table2_imagenet", "table3_base_to_new", "table4_domain_and_class"):
        assert load_spec(f"configs/{name}.yaml").profile == "official", name


def test_a_tilde_output_dir_is_where_the_runs_and_the_state_go_case3(shapes_root, tiny_pretrained, tmp_path,
                                                                     monkeypatch):
    """A variant of case 3: the sweep's own folder (.sweep, the report) and its runs' records agree."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    spec = spec_from_dict({**_spec(tmp_path, shapes_root, tiny_pretrained), "output_dir": "~/sweep"})
    assert spec.output_dir == str(tmp_path / "home" / "sweep")
    assert all(r.path.parent == tmp_path / "home" / "sweep" for r in plan(spec))


def test_holdout_overrides_apply_to_that_held_out_domains_runs_only(shapes_root, tmp_path):
    entry = {"name": "shapes", "root": str(shapes_root),
             "holdout_overrides": {"sketch": {"optim": {"lr": 0.5}}, "photo+sketch": {"optim": {"lr": 0.25}}}}
    spec = spec_from_dict({"methods": ["clipood"], "datasets": [entry], "output_dir": str(tmp_path / "runs"),
                           "holdout": ["sketch", "photo", ["photo", "sketch"]]})
    lrs = {"+".join(r.holdout): r.cfg.optim.lr for r in plan(spec)}
    assert lrs == {"sketch": 0.5, "photo": 5e-6, "photo+sketch": 0.25}
    spec = spec_from_dict({"methods": ["clipood"], "datasets": [{**entry, "holdout": ["photo"]}],
                           "output_dir": str(tmp_path / "runs")})
    with pytest.raises(ConfigError, match="holdout_overrides names photo\\+sketch, sketch, which it does not hold out"):
        plan(spec)
    assert load_spec("configs/emoji_lodo.yaml").datasets[0].holdout_overrides["noto"] == {
        "model": {"pretrained": "emoji-without-noto"}}


RIVALS = ["zeroshot", "finetune", "clipood", "coop", "cocoop", "coral", "lp-ft", "flyp", "clipood+swad"]


def test_every_rival_method_runs_in_a_sweep_and_the_report_shows_it(shapes_root, tiny_pretrained, tmp_path):
    """The issue's sweep: the paper's rivals and today's baselines beside CLIPood, 1 seed, few steps, base-to-new;
    each run records its own parts and the report has a row for every method."""
    spec = _spec(tmp_path, shapes_root, tiny_pretrained, methods=RIVALS + ["wise-ft"], wise_ft_base="flyp",
                 holdout=["sketch"], seeds=[0], base_to_new=True, wise_ft_alphas=[0.0, 1.0],
                 method_overrides={"clipood+swad": {"averaging": {"swad_segment": 1}}})
    outcome = run_sweep(spec_from_dict(spec), progress=False)
    assert outcome.failed == {}
    runs = {r.method.name: r for r in plan(spec_from_dict(spec))}
    for name in RIVALS[1:]:
        results = json.loads((runs[name].path / "results.json").read_text())
        m = METHODS[name]
        assert (results["method"]["tuning"], results["method"]["loss"], results["method"]["averaging"]) == m.parts
    swad = json.loads((runs["clipood+swad"].path / "results.json").read_text())["average"]
    assert swad["segment_steps"] == 1 and swad["converged"] in (True, False)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    for name in RIVALS + ["wise-ft/flyp"]:
        from clipood.methods import method_label
        assert method_label(name) in text, name
