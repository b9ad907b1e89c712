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
