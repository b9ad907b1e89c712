"""Every GPU figure of docs/performance.md in one command, one JSON file and one table.

A GPU session is short (the device machines lent here: 15 minutes, all tries together), so
this script runs each measurement in turn within a time budget, records a failure or a
skip in the JSON instead of stopping, and prints a table against the goals at the end:

* ViT-B/16 training at 224 px, bf16 autocast, fused AdamW, the CLIPood step (MMS + BMA every
  step): images/s and MFU at batch 256 and at the largest batch that fits, with and without
  ``torch.compile`` (``bench_gpu_throughput.py``);
* CLIPood step / plain fine-tuning step (``bench_step.py``), BMA update / optimiser step
  (``bench_average.py``), evaluation with the class texts encoded once vs per batch
  (``bench_eval.py``);
* ``clipood train`` under torchrun (NCCL on CUDA, one process per GPU: 1 and, where there
  are N GPUs, N) against the same run in one process;
* fp16 with the grad scaler, and bf16 with gradient accumulation, against fp32;
* the demo's fine-tuning runs on the GPU (``--demo-cache``: a clipood cache folder that holds
  the demo's built slice and its aligned weights, made by ``make demo`` on any machine).

``--smoke-cpu`` runs all of it on the CPU on the tiny model (CI does), so that the first GPU
run measures instead of debugging; its figures mean nothing.

    perf/gpu-check.sh WHEELS_DIR                       # install offline from wheels, then this script
    python perf/gpu_check.py --out gpu-check.json      # on a CUDA machine with clipood installed
    python perf/gpu_check.py --smoke-cpu --out smoke.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (sets HF_HUB_OFFLINE, TQDM_DISABLE)
import torch  # noqa: E402

# dense bf16 peaks (TFLOP/s) by a substring of torch.cuda.get_device_name, most specific first
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
                    ("L40S", 362.0))
GOALS = {"step_ratio": ("CLIPood / plain fine-tuning step", "<=", 1.05),
         "bma_ratio": ("BMA update / AdamW step", "<=", 1.0),
         "mfu": ("MFU at batch 256, bf16", ">=", 0.45)}


def peak_tflops(device_name: str) -> Optional[float]:
    for key, peak in PEAK_BF16_TFLOPS:
        if key in device_name:
            return peak
    return None


class Check:
    """Runs named steps within a time budget; each one's figures, or why it failed or was skipped."""

    def __init__(self, budget_s: float):
        self.t0, self.budget_s, self.steps = time.perf_counter(), budget_s, {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def run(self, name: str, fn: Callable[[], dict], *, needs_s: float = 0.0) -> Optional[dict]:
        if self.elapsed() + needs_s > self.budget_s:
            self.steps[name] = {"status": "skipped", "why": f"time budget: {self.elapsed():.0f} s of "
                                f"{self.budget_s:.0f} s used, this step needs about {needs_s:.0f} s"}
            print(f"== {name}: skipped (time budget)", flush=True)
            return None
        print(f"\n== {name}", flush=True)
        t = time.perf_counter()
        try:
            figures = fn()
            self.steps[name] = {"status": "ok", "seconds": round(time.perf_counter() - t, 1), **figures}
        except Skip as e:
            self.steps[name] = {"status": "skipped", "why": str(e)}
            print(f"   skipped: {e}", flush=True)
        except Exception as e:  # noqa: BLE001 -- one failed measurement must not cost the others
            self.steps[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                "traceback": traceback.format_exc(limit=8)}
            print(f"   failed: {type(e).__name__}: {e}", flush=True)
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return self.steps[name] if self.steps[name]["status"] == "ok" else None


class Skip(Exception):
    pass


def bench(module: str, argv: list[str]) -> dict:
    """One speed script's main(), in this process, its figures read back from its --json file."""
    mod = __import__(module)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        rc = mod.main([*argv, "--json", str(out)])
        if rc != 0 or not out.is_file():
            raise RuntimeError(f"{module} exited with {rc} and wrote no figures")
        return json.loads(out.read_text())


def largest_batch(arch: str, device: str, start: int, cap: int, classes: int) -> int:
    """The largest power-of-two multiple of ``start`` (up to ``cap``) whose CLIPood step fits in memory."""
    from clipood.training.loop import train_step
    ns = argparse.Namespace(arch=arch, device=device, precision="auto")
    exp = common.experiment(ns, classes=classes, loss="mms", averaging="bma")
    fits, b = 0, start
    while b <= cap:
        try:
            x, y = common.batch(exp, b, classes)
            train_step(exp, x, y)
            exp.averager.update(1)
            common.sync(exp.device)
            fits = b
            print(f"   batch {b}: fits", flush=True)
        except torch.cuda.OutOfMemoryError:
            print(f"   batch {b}: out of memory", flush=True)
            break
        finally:
            x = y = None
            exp.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if exp.device.type == "cuda":
                torch.cuda.empty_cache()
        b *= 2
    if not fits:
        raise RuntimeError(f"not even batch {start} fits")
    return fits


# ------------------------------------------------------------------ runs of `clipood train`

def _train_flags(root: Path, arch: str, device: str, out: Path, name: str, steps: int, extra: list[str]) -> list[str]:
    return ["train", "--root", str(root), "--arch", arch, "--pretrained", "none", "--holdout-domain", "sketch",
            "--steps", str(steps), "--batch-size", "8", "--lr", "1e-4", "--workers", "0", "--checkpoint-every", "0",
            "--log-every", "1", "--device", device, "--output-dir", str(out), "--name", name, "--no-progress",
            "--seed", "0", *extra]


def _run_train(cmd: list[str], env: dict, run_dir: Path) -> dict:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed: {proc.stderr.strip()[-1500:]}")
    results = json.loads((run_dir / "results.json").read_text())
    losses = [json.loads(x)["loss"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    return {"results": results, "losses": losses, "model": run_dir / "model" / "open_clip_model.safetensors"}


def _compare(a: dict, b: dict) -> dict:
    from safetensors.torch import load_file
    wa, wb = load_file(str(a["model"])), load_file(str(b["model"]))
    weight_diff = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    loss_diff = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a["losses"], b["losses"]))
    acc = {k: (v["accuracy"], b["results"]["final"][k]["accuracy"]) for k, v in a["results"]["final"].items()}
    return {"max_weight_diff": weight_diff, "max_rel_loss_diff": loss_diff,
            "max_accuracy_diff": max(abs(x - y) for x, y in acc.values()), "steps": len(a["losses"])}


def distributed_check(root: Path, arch: str, device: str, work: Path, gpus: int, steps: int) -> dict:
    """torchrun (NCCL on CUDA, gloo on CPU) with 1 and N processes vs one plain process: same results."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        raise Skip(f"torchrun not found beside {sys.executable}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    py = [sys.executable, "-m", "clipood"]
    one = _run_train([*py, *_train_flags(root, arch, device, work, "one", steps, [])], env, work / "one")
    out = {"backend": "nccl" if device == "cuda" else "gloo"}
    for n in sorted({1, gpus}):
        name = f"torchrun-{n}"
        cmd = [str(torchrun), "--standalone", f"--nproc_per_node={n}", "-m", "clipood.cli",
               *_train_flags(root, arch, device, work, name, steps, [])]
        run = _run_train(cmd, env, work / name)
        if run["results"]["environment"]["world_size"] != n:
            raise RuntimeError(f"{name}: results.json says world size {run['results']['environment']['world_size']}")
        out[f"{n}_process"] = _compare(one, run)
        print(f"   {n} process(es) vs one plain process: {out[f'{n}_process']}", flush=True)
    return out


def precision_check(root: Path, arch: str, device: str, work: Path, steps: int) -> dict:
    """fp16 + grad scaler and bf16 + gradient accumulation against fp32, same seed and data."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    py = [sys.executable, "-m", "clipood"]
    variants = {"fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"],
                "bf16_accum4": ["--precision", "bf16", "--accum-steps", "4"]}
    if device == "cuda":
        variants["fp16_scaler"] = ["--precision", "fp16"]
    runs = {k: _run_train([*py, *_train_flags(root, arch, device, work, k, steps, v)], env, work / k)
            for k, v in variants.items()}
    out = {k: {**_compare(runs["fp32"], r), "final_loss": r["losses"][-1]} for k, r in runs.items() if k != "fp32"}
    out["bf16_accum4_vs_bf16"] = _compare(runs["bf16"], runs["bf16_accum4"])
    if device != "cuda":
        out["fp16_scaler"] = "not run: fp16 needs CUDA"
    for k, v in out.items():
        print(f"   {k}: {v}", flush=True)
    return out


def demo_check(cache: Optional[Path], out: Path, seeds: int) -> dict:
    """The demo's fine-tuning runs (its sweep) on this device, from a cache folder made by `make demo`."""
    if cache is None:
        raise Skip("no --demo-cache given (a clipood cache folder holding the demo's slice and aligned weights)")
    from clipood.demo import DemoSettings, demo_spec, ensure_backbone, heldout_table
    from clipood.sweep import run_sweep
    s = DemoSettings(seeds=seeds)
    root = cache / "datasets" / f"emoji-{s.classes}"
    weights = cache / "pretrained" / s.arch / s.tag
    for need in (root, weights):
        if not need.is_dir():
            raise Skip(f"{need} not found: run `make demo` with CLIPOOD_CACHE={cache} first")
    os.environ["CLIPOOD_CACHE"] = str(cache)  # where the demo's code looks for the weights
    ensure_backbone(s, [], progress=False)  # the weights exist: this only checks their alignment record
    t = time.perf_counter()
    outcome = run_sweep(demo_spec(root, out, s), progress=False)
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} demo run(s) failed: {next(iter(outcome.failed.values()))}")
    table = heldout_table(out, s.holdout)
    print(table, flush=True)
    return {"seconds_runs": round(time.perf_counter() - t, 1), "seeds": seeds, "steps": s.steps, "table": table}


# ------------------------------------------------------------------ the whole check

def environment(device: str) -> dict:
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "host": platform.node()}
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        info.update(device=name, gpus=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version(),
                    nccl=".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None,
                    memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    else:
        info.update(device=common.device_description(torch.device("cpu")), gpus=0)
    return info


def table(report: dict) -> str:
    s, rows = report["steps"], []

    def get(step, *keys):
        v = s.get(step, {})
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    b = report["batch"]
    figures = {f"images/s at batch {b}": get("throughput_256", "images_per_s"),
               f"MFU at batch {b}": get("throughput_256", "mfu"),
               "largest batch": get("largest_batch", "batch"),
               "images/s at the largest batch": get("throughput_largest", "images_per_s"),
               "MFU at the largest batch": get("throughput_largest", "mfu"),
               f"images/s at batch {b}, compiled": get("throughput_compiled", "images_per_s"),
               f"MFU at batch {b}, compiled": get("throughput_compiled", "mfu"),
               "CLIPood / plain fine-tuning step": get("step_ratio", "ratio"),
               "BMA update / AdamW step": get("bma_ratio", "time_ratio"),
               "eval speed-up, texts once": get("eval", "speedup"),
               "torchrun 1 process: max weight diff": get("distributed", "1_process", "max_weight_diff"),
               "bf16 + accum 4 vs bf16: max rel loss diff": get("precision", "bf16_accum4_vs_bf16",
                                                                "max_rel_loss_diff"),
               "demo runs (s)": get("demo", "seconds_runs")}
    goal_of = {f"MFU at batch {b}": "mfu", "CLIPood / plain fine-tuning step": "step_ratio",
               "BMA update / AdamW step": "bma_ratio"}
    for label, v in figures.items():
        goal = ""
        if label in goal_of and v is not None:
            _, op, target = GOALS[goal_of[label]]
            met = v <= target if op == "<=" else v >= target
            goal = f"{op} {target}: {'met' if met else 'NOT met'}"
        shown = "-" if v is None else (f"{100 * v:.1f} %" if "MFU" in label else
                                       (f"{v:.3g}" if isinstance(v, float) else str(v)))
        rows.append(f"| {label} | {shown} | {goal} |")
    status = [f"| step `{k}` | {v['status']} | {v.get('why') or v.get('error') or ''} |"
              for k, v in s.items() if v["status"] != "ok"]
    e = report["environment"]
    head = f"{e['device']}, torch {e['torch']}, CUDA {e['cuda']}, {e['date']}"
    if report["smoke_cpu"]:
        head += " -- CPU smoke run on the tiny model: these figures check the script and mean nothing"
    return "\n".join([head, "", "| figure | value | goal |", "|---|---|---|", *rows, *status])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu-check.json", help="the JSON file with every figure (default gpu-check.json).")
    p.add_argument("--budget-s", type=float, default=360.0, help="stop starting new steps after this (default 360).")
    p.add_argument("--arch", default="ViT-B-16", help="the throughput model (default ViT-B-16, random weights).")
    p.add_argument("--check-arch", default="ViT-B-32", help="the model of the torchrun and precision runs.")
    p.add_argument("--batch", type=int, default=256, help="the throughput batch (default 256).")
    p.add_argument("--max-batch", type=int, default=4096, help="the largest batch tried (default 4096).")
    p.add_argument("--classes", type=int, default=345, help="classes of the throughput runs (default 345).")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per figure (default 20).")
    p.add_argument("--peak-tflops", type=float, help="dense bf16 peak; default from the device name "
                   f"({', '.join(f'{k} {v:.0f}' for k, v in PEAK_BF16_TFLOPS)}).")
    p.add_argument("--demo-cache", type=Path, help="a clipood cache folder holding the demo's slice and its aligned "
                   "weights (CLIPOOD_CACHE of a finished `make demo`): runs the demo's fine-tuning here.")
    p.add_argument("--demo-seeds", type=int, default=1, help="seeds per method of the demo step (default 1).")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile figures.")
    p.add_argument("--smoke-cpu", action="store_true", help="run everything on the CPU on the tiny model, small "
                   "batches and few repetitions, to check this script; the figures mean nothing.")
    args = p.parse_args(argv)
    if args.smoke_cpu:
        args.arch = args.check_arch = "clipood-tiny"
        args.batch, args.max_batch, args.classes, args.reps = 4, 8, 4, 2
        device = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; this script measures a GPU (--smoke-cpu checks it on the CPU)")
        return 2
    else:
        device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    env = environment(device)
    peak = args.peak_tflops or peak_tflops(env["device"]) or 989.0
    env["peak_bf16_tflops"] = peak
    env["peak_from"] = ("--peak-tflops" if args.peak_tflops else
                        "device name" if peak_tflops(env["device"]) else "assumed (unknown device: pass --peak-tflops)")
    print(json.dumps(env, indent=1), flush=True)
    check = Check(args.budget_s)
    common_argv = ["--arch", args.arch, "--device", device, "--reps", str(args.reps)]
    tput = [*common_argv, "--classes", str(args.classes), "--peak-tflops", str(peak)]
    if args.smoke_cpu:
        tput = ["--smoke-cpu", *tput]
    check.run("throughput_256", lambda: bench("bench_gpu_throughput", [*tput, "--batch", str(args.batch)]), needs_s=20)
    check.run("step_ratio", lambda: bench("bench_step", [*common_argv, "--batch", str(args.batch),
                                                          "--classes", str(args.classes)]), needs_s=20)
    check.run("bma_ratio", lambda: bench("bench_average", common_argv), needs_s=10)
    check.run("eval", lambda: bench("bench_eval", [*common_argv, "--classes", str(min(args.classes * 3, 1000)),
                                                   "--batch", str(args.batch), "--images", str(args.batch * 16)]),
              needs_s=20)
    found = check.run("largest_batch", lambda: {"batch": largest_batch(args.arch, device, args.batch * 2,
                                                                       args.max_batch, args.classes)}, needs_s=30)
    if found:
        check.run("throughput_largest", lambda: bench("bench_gpu_throughput", [*tput, "--batch", str(found["batch"]),
                                                                               "--reps", str(max(2, args.reps // 2))]),
                  needs_s=30)
    if not args.no_compile:
        check.run("throughput_compiled", lambda: bench("bench_gpu_throughput",
                                                       [*tput, "--batch", str(args.batch), "--compile"]), needs_s=90)
    with tempfile.TemporaryDirectory(prefix="clipood-gpu-check-") as tmp:
        from clipood.data.synthetic import make_shapes_dataset
        root = make_shapes_dataset(Path(tmp) / "shapes", per_class=6, size=64)
        steps = 4 if args.smoke_cpu else 20
        check.run("distributed", lambda: distributed_check(root, args.check_arch, device, Path(tmp) / "ddp",
                                                           max(1, env["gpus"]), steps), needs_s=60)
        check.run("precision", lambda: precision_check(root, args.check_arch, device, Path(tmp) / "prec", steps),
                  needs_s=60)
        check.run("demo", lambda: demo_check(args.demo_cache, Path(tmp) / "demo", args.demo_seeds), needs_s=60)
    report = {"environment": env, "budget_s": args.budget_s, "seconds": round(check.elapsed(), 1),
              "smoke_cpu": args.smoke_cpu, "batch": args.batch, "arch": args.arch, "goals": GOALS, "steps": check.steps}
    text = table(report)
    report["table"] = text
    Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print("\n" + text + f"\n\nfigures: {args.out} ({check.elapsed():.0f} s in all)")
    return 0 if all(v["status"] != "failed" for v in check.steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
