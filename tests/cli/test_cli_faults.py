"""Nothing silent, no traceback: options that do not apply, bad values, faults of the environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from clipood.cli import build_parser, main
from clipood.losses import LOSSES


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip()


def _base(shapes_root, tiny_pretrained, tmp_path, *extra):
    return ["train", "--root", str(shapes_root), "--arch", f"local-dir:{tiny_pretrained}", "--steps", "2",
            "--batch-size", "2", "--workers", "0", "--no-zeroshot", "--no-progress", "--eval-batch-size", "64",
            "--output-dir", str(tmp_path / "runs"), *extra]


@pytest.mark.parametrize("flags,expected", [
    (["--loss", "linear", "--lambda", "0.2"],  # the losses that read lambda, as their registry entries declare
     f"--lambda does not apply with --loss linear (only with {', '.join(LOSSES.users('margin_lambda'))})"),
    (["--averaging", "none", "--beta", "0.1"], "--beta does not apply with --averaging none (only with bma)"),
    (["--head-init", "random"], "--head-init does not apply with --loss mms (only with linear)"),
    (["--averaging", "bma", "--ema-decay", "0.99"], "--ema-decay does not apply with --averaging bma (only with ema)"),
])
def test_an_option_that_does_not_apply_is_one_warning(capsys, shapes_root, tiny_pretrained, tmp_path, flags,
                                                      expected):
    code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, *flags))
    assert code == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("clipood: warning:")]
    assert warnings == [f"clipood: warning: {expected}; it is ignored"]


def test_duplicate_yaml_keys_are_refused(capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("optim:\n  lr: 1.0e-5\n  lr: 1.0e-3\n")
    code, err = _run(capsys, ["train", "--config", str(cfg), "--root", str(tmp_path)])
    assert code == 2 and "key 'lr' is given twice" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv,expected", [
    (["--seed", "1180591620717411303424"], "--seed: 1180591620717411303424 is out of range"),
    (["--template", "{}-{}"], "--template: '{}-{}' is out of range; allowed: a prompt with one '{}'"),
    (["--lr", "-1e-3"], "--lr: -0.001 is out of range"),
    (["--name", "../../escape"], "--name: '../../escape' is not a folder name inside --output-dir"),
])
def test_bad_values_are_one_line(capsys, shapes_root, tiny_pretrained, tmp_path, argv, expected):
    code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, *argv))
    assert code == 2 and err == f"clipood: error: {expected}" or (code == 2 and expected in err), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "escape").exists()


def test_output_dir_that_is_a_file_and_eval_out_that_is_a_folder(capsys, shapes_root, tiny_pretrained, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = _base(shapes_root, tiny_pretrained, tmp_path)
    argv[argv.index("--output-dir") + 1] = str(afile)
    code, err = _run(capsys, argv)
    assert code == 2 and "--output-dir: " in err and "is a file, not a folder" in err
    code, err = _run(capsys, ["eval", "--model", str(tiny_pretrained), "--root", str(shapes_root), "--out",
                              str(tmp_path)])
    assert code == 2 and "--out: " in err and "is a folder" in err and len(err.splitlines()) == 1


def test_a_corrupt_model_record_is_one_line(capsys, shapes_root, tiny_pretrained, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(tiny_pretrained, model)
    (model / "clipood.json").write_text('{"class_names": [')
    code, err = _run(capsys, ["eval", "--model", str(model), "--root", str(shapes_root), "--workers", "0",
                              "--no-progress"])
    assert code == 2 and "clipood.json is not valid JSON" in err and len(err.splitlines()) == 1


def test_eval_offers_only_what_it_uses_and_models_has_a_description():
    sub = build_parser()._subparsers._group_actions[0].choices
    help_text = sub["eval"].format_help()
    assert "--zeroshot" not in help_text and "--eval-batch-size" in help_text
    assert "compute options:" in help_text and "train options" not in help_text  # device and precision: compute's
    assert "--device" in help_text.split("compute options:")[1]
    assert "List every architecture" in sub["models"].format_help()


def test_python_dash_m_clipood_and_a_closed_pipe(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "clipood", "--version"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("clipood ")
    piped = subprocess.run(f"'{sys.executable}' -m clipood models | head -1", shell=True, capture_output=True,
                           text=True, env=env, timeout=120)
    assert piped.stdout.strip() and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_files_follow_the_umask(shapes_root, tiny_pretrained, tmp_path):
    old = os.umask(0o022)
    try:
        code = main(_base(shapes_root, tiny_pretrained, tmp_path, "--name", "perm"))
    finally:
        os.umask(old)
    assert code == 0
    run = tmp_path / "runs" / "perm"
    files = [p for p in run.rglob("*") if p.is_file() and p.name != ".lock"]
    assert any(p.name == "open_clip_model.safetensors" for p in files)
    modes = {p.relative_to(run).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert {k: oct(m) for k, m in modes.items() if m != 0o644} == {}


def test_oserror_is_one_line_and_debug_shows_the_traceback(capsys, shapes_root, tiny_pretrained, tmp_path,
                                                           monkeypatch):
    from clipood.commands import run as runner

    def unreadable(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "secret.png"))
    monkeypatch.setattr(runner, "build_experiment", unreadable)
    code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path))
    assert code == 2 and err == f"clipood: error: {tmp_path / 'secret.png'}: Permission denied " \
                                "(CLIPOOD_DEBUG=1 shows where)"
    monkeypatch.setenv("CLIPOOD_DEBUG", "1")
    with pytest.raises(PermissionError):
        main(_base(shapes_root, tiny_pretrained, tmp_path, "--name", "debug"))


def _tmpfs(path, size):
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip("a small filesystem to fill needs root and mount (tmpfs); the simulated test covers the rest")
    return path


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_debris(capsys, shapes_root, tiny_pretrained,
                                                                      tmp_path):
    disk = _tmpfs(tmp_path / "disk", "5m")  # two checkpoints (1.3 MB each) fit, the exported model (6.9 MB) does not
    try:
        argv = _base(shapes_root, tiny_pretrained, tmp_path, "--checkpoint-every", "1", "--steps", "3",
                     "--name", "full")
        argv[argv.index("--output-dir") + 1] = str(disk)
        code, err = _run(capsys, argv)
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "the disk is full" in err and "open_clip_model.safetensors" in err
        assert "checkpoints are intact" in err and f"clipood train --resume {disk / 'full'}" in err
        assert not [p for p in disk.rglob("*.tmp")]
        assert (disk / "full" / "checkpoints").is_dir()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_while_checkpointing_keeps_the_earlier_checkpoints(capsys, shapes_root, tiny_pretrained, tmp_path,
                                                                       monkeypatch):
    """Simulated: torch.save fails as it does on a full disk (its C++ writer's message)."""
    import torch

    from clipood.training import checkpoint as ckpt
    real, calls = torch.save, {"n": 0}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            with open(f, "wb") as fh:
                fh.write(b"half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1216 vs 1110")
        return real(obj, f, *a, **k)
    monkeypatch.setattr(ckpt.torch, "save", save)
    code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, "--checkpoint-every", "1", "--steps", "4",
                                   "--name", "ck"))
    assert code == 2 and "the disk is full" in err and "step-00000002.pt" in err and len(err.splitlines()) == 1
    run = tmp_path / "runs" / "ck"
    assert [p.name for p in (run / "checkpoints").glob("step-*.pt")] == ["step-00000001.pt"]
    assert not list(run.rglob("*.tmp"))
    monkeypatch.setattr(ckpt.torch, "save", real)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert json.loads((run / "results.json").read_text())["resumed_from_step"] == 1


def test_resume_takes_only_options_of_how_it_runs(capsys, shapes_root, tiny_pretrained, tmp_path):
    run = tmp_path / "runs" / "r"
    (run).mkdir(parents=True)
    code, _ = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, "--name", "r"))
    assert code == 0
    (run / "results.json").unlink()  # pretend it stopped
    code, err = _run(capsys, ["train", "--resume", str(run), "--lr", "1e-3"])
    assert code == 2 and "--resume: --lr cannot change a run that has started" in err
    code, err = _run(capsys, ["train", "--allow-changed-data", "--root", str(shapes_root)])
    assert code == 2 and "--allow-changed-data: applies only with --resume" in err


# ------------------------------------------------------------------ issue 23: the record says what was run


def test_quoted_tilde_output_dir_goes_where_the_record_says_case3(capsys, shapes_root, tiny_pretrained, tmp_path,
                                                                   monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    argv = _base(shapes_root, tiny_pretrained, tmp_path, "--name", "t")
    argv[argv.index("--output-dir") + 1] = "~/runs"  # quoted: the shell left the '~'
    code, err = _run(capsys, argv)
    assert code == 0, err
    assert not (work / "~").exists(), "a folder literally named '~'"
    import yaml
    saved = yaml.safe_load((home / "runs" / "t" / "config.yaml").read_text())
    assert saved["run"]["output_dir"] == str(home / "runs")


def test_an_empty_pretrained_is_an_error_not_random_weights_case4(capsys, shapes_root, tiny_pretrained, tmp_path):
    code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, "--pretrained", ""))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--pretrained (model.pretrained): the value is empty" in err
    assert not (tmp_path / "runs").exists()
    for flag in ("--class-names", "--name", "--temperature"):  # variants: no empty value means 'none' by accident
        code, err = _run(capsys, _base(shapes_root, tiny_pretrained, tmp_path, flag, " "))
        assert code == 2 and f"{flag} (" in err and "the value is empty" in err, err
    from clipood.errors import ModelError
    from clipood.model import load_backbone
    with pytest.raises(ModelError, match="--pretrained: the value is empty"):
        load_backbone(f"local-dir:{tiny_pretrained}", "")


# ------------------------------------------------------------------ issue 23: a full disk names what failed


def test_a_full_disk_names_the_file_not_the_current_folder_case6(capsys, tmp_path, monkeypatch):
    """Simulated: PIL's and matplotlib's writers raise ENOSPC without a file name, as they do on a full disk."""
    from PIL import Image
    monkeypatch.chdir(tmp_path)

    def full(self, fp, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", full)
    code, err = _run(capsys, ["data", "build", "shapes", "--out", str(tmp_path / "s"), "--per-class", "1"])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"clipood: error: {tmp_path / 's' / 'photo' / 'circle' / '0000.png'}: the disk is full" in err
    assert "clipood: error: .:" not in err

    import sys as _sys
    from pathlib import Path
    _sys.path.insert(0, str(Path(__file__).parents[1] / "reporting"))
    from fakes import PACS, _domainbed_runs
    _domainbed_runs(tmp_path / "runs", __import__("random").Random(0), held_out=PACS[:1], seeds=(0,))
    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    code, err = _run(capsys, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"clipood: error: {tmp_path / 'rep' / 'plots'}" in err and ".png: the disk is full" in err
    assert not list((tmp_path / "rep").rglob("*.tmp"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["models"], ["--version"]])
def test_output_onto_a_full_device_is_one_line_naming_stdout_case6(argv):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "clipood.cli", *argv], stdout=full, stderr=subprocess.PIPE,
                             text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "clipood: error: <stdout>: cannot write the command's output (No space left on " \
                                 "device); redirect it somewhere writable"


def test_a_deleted_working_folder_is_one_line_case15(tmp_path):
    gone = tmp_path / "gone"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for argv in (["-m", "clipood", "models"], ["-m", "clipood.cli", "train", "--root", "x"]):
        gone.mkdir()
        script = f"cd {gone} && rmdir {gone} && exec {sys.executable} {' '.join(argv)}"
        res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == "clipood: error: the working folder no longer exists (deleted while this shell " \
                                     "was in it); cd to an existing folder and run again"
