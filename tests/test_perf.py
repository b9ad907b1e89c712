"""The benchmark scripts run end to end on the tiny model (no timing is asserted), and the FLOP
count behind the GPU benchmark's MFU agrees with an independent analytic count."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "perf"
sys.path.insert(0, str(BENCH))

TINY = ["--arch", "clipood-tiny", "--device", "cpu", "--reps", "2", "--warmup", "1", "--batch", "4"]


def _run(module: str, argv: list[str], tmp_path) -> dict:
    mod = __import__(module)
    out = tmp_path / f"{module}.json"
    assert mod.main([*argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_bench_step_reports_a_ratio(tmp_path, capsys):
    info = _run("bench_step", [*TINY, "--classes", "5"], tmp_path)
    assert len(info["plain_s"]) == len(info["clipood_s"]) == 2
    assert info["ratio"] == pytest.approx(statistics.median(info["clipood_s"]) / statistics.median(info["plain_s"]))
    assert "ratio" in capsys.readouterr().out


def test_bench_average_counts_one_copy(tmp_path):
    info = _run("bench_average", TINY, tmp_path)
    assert info["copies"] == pytest.approx(1.0)  # a ViT has no floating buffers: exactly one fp32 copy
    assert info["time_ratio"] > 0


def test_bench_eval_both_loops(tmp_path):
    info = _run("bench_eval", [*TINY, "--classes", "4", "--images", "8"], tmp_path)
    assert info["batched_images_per_s"] > 0 and info["naive_images_per_s"] > 0


def test_official_precision_measures_fp16_storage_against_fp32(tmp_path, capsys):
    info = _run("official_precision", ["--arch", "clipood-tiny", "--steps", "3", "--lr", "1e-4",
                                        "--batch-per-domain", "2"], tmp_path)
    figures = info["runs"]["0.0001"]
    assert 0 < figures["displacement_ratio"] < 1.5 and figures["unmoved_fp16"] >= figures["unmoved_fp32"]
    assert len(figures["grad_norms_fp32"]) == 3 and 0 < figures["clip_update_cosine"] <= 1 + 1e-9
    assert "displacement official / fp32" in capsys.readouterr().out


def test_bench_alignment_reports_both_ratios(tmp_path, capsys):
    info = _run("bench_alignment", ["--arch", "clipood-tiny-towers", "--pretrained", "none", "--n-images", "8",
                                     "--reps", "1", "--batch", "16", "--rows", "20", "200", "--steps", "2"], tmp_path)
    assert info["features"]["speedup"] > 0 and info["features"]["images"] == 8
    assert len(info["lit_step"]["ms_per_step"]) == 2 and info["lit_step"]["large_over_small"] > 0
    assert "LiT step" in capsys.readouterr().out


def test_bench_gpu_refuses_politely_without_cuda(capsys):
    import bench_gpu_throughput
    assert bench_gpu_throughput.main(["--device", "cpu"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_bench_gpu_runs_end_to_end_as_a_cpu_smoke_test(tmp_path):
    """Every line past the CUDA check runs here, so a GPU session measures instead of debugging."""
    info = _run("bench_gpu_throughput", ["--smoke-cpu", *TINY, "--classes", "4"], tmp_path)
    assert info["images_per_s"] == pytest.approx(4 / statistics.median(info["step_s"]))
    assert info["flops_per_image"] > 0 and 0 < info["mfu"] < 1 and info["peak_memory_gib"] is None


def test_counted_flops_match_the_analytic_vit_count():
    """FlopCounterMode on the real step vs 3 x forward matmuls (minus what the step really skips)."""
    import argparse

    import bench_gpu_throughput as g
    import common
    exp = common.experiment(argparse.Namespace(arch="clipood-tiny", device="cpu", precision="fp32"), classes=4,
                            averaging="none")
    x, y = common.batch(exp, 1, 4)
    counted = g.step_flops(exp, x, y)
    v = exp.classifier.visual
    width, layers, tokens = v.transformer.width, v.transformer.layers, v.grid_size[0] * v.grid_size[1] + 1
    patch = 3 * v.conv1.kernel_size[0] * v.conv1.kernel_size[1]
    analytic = g.analytic_flops(v)
    assert analytic == g.vit_flops_per_image(width, layers, tokens, patch, v.output_dim, 4.0)
    no_input_grad = 2 * (tokens - 1) * patch * width  # images need no gradient
    attention = 3 * layers * tokens * 4 * tokens * width  # counted on CUDA kernels only
    head = 2 * 2 * v.output_dim * 4  # cosine scores of 4 classes: forward + input gradient
    assert any(counted == analytic - no_input_grad - a + head for a in (0, attention)), (counted, analytic)


def test_gpu_check_runs_every_step_as_a_cpu_smoke_test(tmp_path):
    """The one GPU command, run through on the CPU: every measurement step succeeds, the JSON holds them."""
    import os
    import subprocess
    out = tmp_path / "check.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--smoke-cpu", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    steps = report["steps"]
    expected = {"throughput_256", "step_ratio", "bma_ratio", "eval", "largest_batch", "throughput_largest",
                "throughput_compiled", "distributed", "precision", "demo"}
    assert set(steps) == expected
    assert {k for k, v in steps.items() if v["status"] != "ok"} == {"demo"}  # no --demo-cache given
    assert "--demo-cache" in steps["demo"]["why"]
    assert steps["largest_batch"]["batch"] == 8 and steps["throughput_largest"]["batch"] == 8
    assert steps["throughput_compiled"]["compile"] is True
    assert steps["distributed"]["backend"] == "gloo" and steps["distributed"]["1_process"]["steps"] == 4
    assert steps["distributed"]["1_process"]["max_weight_diff"] < 1e-5  # one process under torchrun = plain run
    assert steps["precision"]["fp16_scaler"] == "not run: fp16 needs CUDA"
    assert report["environment"]["torch"] and report["environment"]["date"]
    assert "mean nothing" in report["table"] and "| CLIPood / plain fine-tuning step |" in proc.stdout


def test_gpu_check_peaks_goals_and_budget(tmp_path):
    import gpu_check as g
    assert g.peak_tflops("NVIDIA H200") == 989.0 and g.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert g.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and g.peak_tflops("Tesla T4") is None
    check = g.Check(budget_s=0.0)
    assert check.run("late", lambda: {"x": 1}, needs_s=1.0) is None
    assert check.steps["late"]["status"] == "skipped" and "budget" in check.steps["late"]["why"]
    check = g.Check(budget_s=100.0)
    assert check.run("boom", lambda: 1 / 0) is None and "ZeroDivisionError" in check.steps["boom"]["error"]
    assert check.run("fine", lambda: {"x": 2})["x"] == 2
    with pytest.raises(g.Skip, match="not found"):
        g.demo_check(tmp_path / "no-cache", tmp_path / "demo", 1)
    report = {"batch": 256, "smoke_cpu": False, "steps": {
        "throughput_256": {"status": "ok", "mfu": 0.40}, "step_ratio": {"status": "ok", "ratio": 1.01},
        "bma_ratio": {"status": "ok", "time_ratio": 0.2}},
        "environment": {"device": "NVIDIA H200", "torch": "2.11", "cuda": "13.0", "date": "2026-12-02"}}
    text = g.table(report)
    assert "| MFU at batch 256 | 40.0 % | >= 0.45: NOT met |" in text
    assert "| CLIPood / plain fine-tuning step | 1.01 | <= 1.05: met |" in text
