"""Where sweep runs execute: a GPU per job on this machine, and submitit's executor (its local one here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from clipood.errors import ConfigError
from clipood.sweep import plan, run_sweep, runner, spec_from_dict
from clipood.sweep.launchers import GpuSlots, SlurmOptions, visible_gpus


def _spec(tmp_path, root, tiny_pretrained, **changes) -> dict:
    spec = {"name": "test", "output_dir": str(tmp_path / "runs"), "methods": ["finetune"],
            "datasets": [{"name": "shapes", "root": str(root)}],
            "overrides": {"model": {"arch": f"local-dir:{tiny_pretrained}", "pretrained": "auto"},
                          "data": {"workers": 0}, "optim": {"lr": 1e-3},
                          "train": {"steps": 3, "batch_size": 4, "checkpoint_every": 0}}}
    spec.update(changes)
    return spec


def test_each_job_gets_its_own_gpu_and_more_jobs_share_them(capsys):
    slots = GpuSlots(2, ["3", "5"])
    a, b = slots.take(), slots.take()
    assert {a[1]["CUDA_VISIBLE_DEVICES"], b[1]["CUDA_VISIBLE_DEVICES"]} == {"3", "5"}
    slots.give_back(a[0])
    assert slots.take()[1] == a[1]  # a freed slot's GPU goes to the next job
    GpuSlots(3, ["0", "1"])
    assert "--jobs 3 on 2 GPU(s): jobs share them round-robin" in capsys.readouterr().err
    assert GpuSlots(2, []).take()[1] == {}  # no GPU: the environment is left alone


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 7")
    assert visible_gpus() == ["2", "7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_parallel_runs_see_their_own_gpu(shapes_root, tiny_pretrained, tmp_path, monkeypatch):
    """--jobs 2 with two GPUs: every child process is started with one of them (recorded by a stand-in run)."""
    spec = spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, methods=["zeroshot", "finetune"],
                                holdout=["sketch", "photo"], seeds=[0]))
    runs = plan(spec)
    seen = tmp_path / "seen"
    seen.mkdir()
    script = ("import os, pathlib, sys, time; time.sleep(0.3); "
              f"pathlib.Path({str(seen)!r}, sys.argv[1]).write_text(os.environ.get('CUDA_VISIBLE_DEVICES', ''))")

    def fake_command(run, state_dir):
        return [sys.executable, "-c", script, run.name]

    monkeypatch.setattr(runner, "subprocess_command", fake_command)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    outcome = run_sweep(spec, jobs=2, progress=False)
    got = {p.name: p.read_text() for p in seen.iterdir()}
    assert sorted(got) == sorted(r.name for r in runs)
    assert set(got.values()) == {"4", "6"}  # two at a time, each on its own GPU
    assert set(outcome.failed) == {r.name for r in runs}  # the stand-ins write no results: said, not hidden
    assert all("did not finish" in why or "exit 0" in why for why in outcome.failed.values())


def test_submitit_local_executor_runs_the_sweep_and_a_rerun_skips(shapes_root, tiny_pretrained, tmp_path):
    pytest.importorskip("submitit")
    spec = spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, methods=["zeroshot", "wise-ft"],
                                holdout=["sketch"], seeds=[0], wise_ft_alphas=[0.0, 1.0]))
    runs = plan(spec)
    outcome = run_sweep(spec, progress=False, launcher="submitit-local", slurm=SlurmOptions(time_min=10))
    assert outcome.failed == {} and sorted(outcome.executed) == sorted(r.name for r in runs)
    assert (tmp_path / "runs" / ".sweep" / "submitit").is_dir()
    ft = json.loads((runs[1].path / "results.json").read_text())
    wise = json.loads((runs[2].path / "results.json").read_text())
    for split, entry in ft["final"].items():  # WiSE-FT (in this process) read the submitted run's model
        assert wise["variants"]["alpha=1"][split]["accuracy"] == pytest.approx(entry["accuracy"], abs=1e-9)
    again = run_sweep(spec, progress=False, launcher="submitit-local")
    assert again.executed == [] and sorted(again.skipped) == sorted(r.name for r in runs)


def test_launcher_and_slurm_options_are_checked(shapes_root, tiny_pretrained, tmp_path):
    spec = spec_from_dict(_spec(tmp_path, shapes_root, tiny_pretrained, holdout=["sketch"], seeds=[0]))
    with pytest.raises(ConfigError, match="--launcher: 'pbs' is unknown"):
        run_sweep(spec, progress=False, launcher="pbs")
    with pytest.raises(ConfigError, match="--slurm-time: 0 is out of range"):
        SlurmOptions(time_min=0).check()


def test_cli_says_slurm_options_do_not_apply_locally(shapes_root, tiny_pretrained, tmp_path, capsys):
    from clipood.cli import main
    spec = _spec(tmp_path, shapes_root, tiny_pretrained, holdout=["sketch"], seeds=[0], methods=["zeroshot"])
    path = tmp_path / "spec.yaml"
    import yaml
    path.write_text(yaml.safe_dump(spec))
    said = "--slurm-partition: Slurm options do not apply with --launcher local; ignored"
    assert main(["sweep", str(path), "--slurm-partition", "gpu", "--dry-run"]) == 0
    assert said in capsys.readouterr().err  # a dry run says it too
    assert main(["sweep", str(path), "--slurm-partition", "gpu", "--no-report", "--no-progress"]) == 0


def test_slurm_where_there_is_none_is_one_line_before_anything_is_written(shapes_root, tiny_pretrained, tmp_path):
    import subprocess

    import yaml
    spec = _spec(tmp_path, shapes_root, tiny_pretrained, holdout=["sketch"], seeds=[0], methods=["zeroshot"])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": os.path.dirname(sys.executable)}  # no sbatch on it
    res = subprocess.run([sys.executable, "-m", "clipood", "sweep", str(path), "--launcher", "slurm", "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "clipood: error: --launcher slurm: no Slurm on this machine (sbatch is not on PATH)" in res.stderr
    assert not (Path(spec["output_dir"]) / ".sweep").exists()
