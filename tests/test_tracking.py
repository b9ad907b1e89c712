"""--report-to: TensorBoard event files and an offline W&B run, both read back, carry what metrics.jsonl has."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clipood.errors import ConfigError
from clipood.tracking import check_report_to, flat_scalars, parse_report_to


def _train_cmd(root, pretrained, out, *extra):
    return [sys.executable, "-m", "clipood", "train", "--root", str(root), "--arch", f"local-dir:{pretrained}",
            "--holdout-domain", "sketch", "--steps", "4", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--log-every", "1", "--eval-every", "2", "--output-dir", str(out), "--name", "r", "--no-progress", *extra]


def _train(root, pretrained, out, *extra, env=None):
    res = subprocess.run(_train_cmd(root, pretrained, out, *extra), capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    assert res.returncode == 0, res.stderr[-3000:]
    run = Path(out) / "r"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return run, metrics, json.loads((run / "results.json").read_text())


def test_names_and_scalars():
    assert parse_report_to("tensorboard, wandb") == ["tensorboard", "wandb"] and parse_report_to("none") == []
    with pytest.raises(ConfigError, match="--report-to: 'mlflow' is unknown"):
        parse_report_to("mlflow")
    assert flat_scalars({"step": 3, "loss": 1.5, "final": True, "eval": {"a": {"accuracy": 0.5, "role": "val",
                                                                              "H": float("nan")}}}) == \
        {"loss": 1.5, "eval/a/accuracy": 0.5}


def test_a_missing_package_is_one_line(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(ConfigError, match=r"--report-to wandb: the 'wandb' package is not installed; "
                                          r"pip install 'clipood\[tracking\]'"):
        check_report_to("tensorboard,wandb")


def test_tensorboard_events_read_back(shapes_root, tiny_pretrained, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run, metrics, results = _train(shapes_root, tiny_pretrained, tmp_path, "--report-to", "tensorboard")
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    losses = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert losses == [(m["step"], pytest.approx(m["loss"])) for m in metrics if "loss" in m]
    evals = [m for m in metrics if "eval" in m and not m.get("final")]
    assert [e.step for e in acc.Scalars("eval/sketch/in/accuracy")][:len(evals)] == [m["step"] for m in evals]
    for split, entry in results["final"].items():  # the final results, at the last step
        got = acc.Scalars(f"final/{split}/accuracy")
        assert got[-1].step == 4 and got[-1].value == pytest.approx(entry["accuracy"])
    assert "config/text_summary" in acc.Tags()["tensors"]  # the resolved config as text
    assert (run / "tensorboard" / "hparams").is_dir()  # hyper-parameters with the final metrics


def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (LevelDB log format, 32 KiB blocks, 7-byte file header)."""
    from wandb.proto import wandb_internal_pb2
    data, pos, out, buf = path.read_bytes(), 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def test_wandb_offline_run_read_back(shapes_root, tiny_pretrained, tmp_path):
    pytest.importorskip("wandb")
    run, metrics, results = _train(shapes_root, tiny_pretrained, tmp_path, "--report-to", "wandb",
                                   env={"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_PROJECT": "t"})
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history, summary, config = [], {}, {}
    for rec in _wandb_records(files[0]):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
        elif kind in ("config", "run"):
            items = rec.config.update if kind == "config" else rec.run.config.update
            config.update({i.key: json.loads(i.value_json) for i in items})
    logged = [(h["_step"], h["loss"]) for h in history if "loss" in h]
    assert logged == [(m["step"], pytest.approx(m["loss"])) for m in metrics if "loss" in m]
    name, entry = next(iter(results["final"].items()))
    assert summary[f"final/{name}/accuracy"] == pytest.approx(entry["accuracy"])
    assert config["train.steps"] == 4 and config["run.report_to"] == "wandb"


def test_wandb_without_a_login_is_one_line_before_training(shapes_root, tiny_pretrained, tmp_path):
    """Online W&B with no API key: wandb's reason and what to do, no traceback, no step trained."""
    pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HOME=str(tmp_path / "home"), WANDB_MODE="online", WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))
    cmd = _train_cmd(shapes_root, tiny_pretrained, tmp_path / "runs", "--report-to", "wandb")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    line = [x for x in res.stderr.splitlines() if x.startswith("clipood: error:")]
    assert len(line) == 1 and "--report-to wandb: wandb could not start a run" in line[0]
    assert "WANDB_MODE=offline" in line[0] and "API key" in line[0]
    assert not (tmp_path / "runs" / "r" / "metrics.jsonl").exists() or \
        "loss" not in (tmp_path / "runs" / "r" / "metrics.jsonl").read_text()


def test_tensorboard_of_a_resumed_run_shows_each_step_once(tmp_path):
    """Steps logged after the checkpoint by a killed run are hidden when the resumed run logs them again."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from clipood.tracking import TensorBoard
    first = TensorBoard(tmp_path, {"train.steps": 4})
    for step in (1, 2, 3):
        first.log({"step": step, "loss": float(step)})
    first.writer.close()  # killed after step 3; the checkpoint is at step 2
    again = TensorBoard(tmp_path, {"train.steps": 4})
    again.resume_at(2)
    for step in (3, 4):
        again.log({"step": step, "loss": 10.0 * step})
    again.finish(None)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_wandb_stays_out_of_the_import_path_unless_asked_for_case16(shapes_root, tiny_pretrained, tmp_path):
    """A fresh process runs a command with reporting off: wandb is never imported (timm, through open_clip,
    tries it) and leaves no /tmp/tmp*wandb-* folders; --report-to wandb still gets it."""
    pytest.importorskip("wandb")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = textwrap.dedent(f"""
        import json, os, sys
        from clipood.cli import main
        code = main(["zeroshot", "--root", {str(shapes_root)!r}, "--arch", "local-dir:{tiny_pretrained}",
                     "--workers", "0", "--no-progress", "--output-dir", {str(tmp_path / "runs")!r}])
        import timm, open_clip  # noqa: F401  (both were imported by the command)
        left = [n for n in os.listdir({str(tmp)!r}) if "wandb" in n]
        print(json.dumps({{"code": code, "wandb": "wandb" in sys.modules, "tmp": left}}))
        from clipood.tracking import check_report_to
        check_report_to("wandb")
        import wandb  # noqa: F401  (asked for: importable as ever)
        print("wandb" in sys.modules)
    """)
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    *_, before, after = res.stdout.strip().splitlines()
    assert json.loads(before) == {"code": 0, "wandb": False, "tmp": []}, before
    assert after == "True"
