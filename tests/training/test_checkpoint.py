"""Checkpoints: a changed byte is never resumed from, a fallback is said, a run owns its folder, data is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from clipood.commands import train as run_train
from clipood.errors import ClipoodError, DataError
from clipood.rundir import RunDir, checkpoint_dir, checksum_path
from clipood.training import checkpoint as ckpt


def _state(value: float) -> dict:
    return {"w": torch.full((64,), value), "rng": ckpt.rng_state()}


def test_a_flipped_byte_is_refused_and_the_older_checkpoint_used(tmp_path, capsys):
    for step in (2, 4):
        ckpt.save_checkpoint(tmp_path, step, _state(float(step)), keep=2)
    newest = checkpoint_dir(tmp_path) / "step-00000004.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data: torch would still load it, with a wrong value
    newest.write_bytes(bytes(data))
    state = ckpt.load_latest(tmp_path)
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    err = capsys.readouterr().err
    assert "skipped step-00000004.pt (checksum mismatch" in err and "resuming from step-00000002.pt (step 2)" in err

    (checkpoint_dir(tmp_path) / "step-00000002.pt.sha256").unlink()  # a write that never finished
    with pytest.raises(ClipoodError, match="no intact checkpoint in .*delete the folder"):
        ckpt.load_latest(tmp_path)


def test_a_truncated_newest_checkpoint_is_skipped_with_a_note(tmp_path, capsys):
    for step in (3, 6):
        ckpt.save_checkpoint(tmp_path, step, _state(float(step)), keep=2)
    newest = checkpoint_dir(tmp_path) / "step-00000006.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    assert ckpt.load_latest(tmp_path)["step"] == 3
    assert "skipped step-00000006.pt" in capsys.readouterr().err


def test_a_deleted_checkpoint_folder_restarts_from_zero_and_says_so(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 5, "loss": 1.0}\n')
    assert ckpt.load_latest(tmp_path) is None
    err = capsys.readouterr().err
    assert "has no checkpoints/ folder" in err and "starting again from step 0" in err


def _stopped_run(cfg, monkeypatch, at: int = 3):
    """A run stopped after its checkpoint at step ``at`` (as SIGKILL would, minus the debris)."""
    from clipood.training import loop
    real = loop.ckpt.save_checkpoint

    def save_then_die(run_dir, step, state, keep):
        path = real(run_dir, step, state, keep)
        if step == at:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop.ckpt, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, progress=False)
    monkeypatch.setattr(loop.ckpt, "save_checkpoint", real)
    return RunDir(cfg.run.output_dir + "/" + cfg.run.name)


def test_resume_refuses_changed_images_unless_asked(tiny_config, shapes_root, tmp_path, monkeypatch):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    cfg = tiny_config
    cfg.data.root, cfg.train.checkpoint_every = str(root), 3
    run = _stopped_run(cfg, monkeypatch)
    victim = sorted(root.glob("photo/*/*.png"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=r"the images under .* changed since the checkpoint \(192 images then, 191"):
        run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False, allow_changed_data=True)
    assert results["resumed_from_step"] == 3


def test_resume_works_from_another_working_directory(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config
    cfg.train.checkpoint_every = 3
    monkeypatch.chdir(tmp_path)
    cfg.run.output_dir = "runs-here"  # relative, as a user types it
    (tmp_path / "prompts.txt").write_text("a photo of a {}.\na drawing of a {}.\n")
    cfg.model.templates = ["prompts.txt", "simple", "a sketch of a {}."]  # a file, a preset, a template
    _stopped_run(cfg, monkeypatch)
    saved = RunDir.open(tmp_path / "runs-here" / "run")[1]
    assert os.path.isabs(saved.data.root) and os.path.isabs(saved.run.output_dir)
    assert saved.model.templates == [str(tmp_path / "prompts.txt"), "simple", "a sketch of a {}."]
    monkeypatch.chdir("/")
    _, results = run_train(saved, resume=RunDir(tmp_path / "runs-here" / "run"), progress=False)
    assert results["resumed_from_step"] == 3


def test_a_second_process_cannot_take_a_run_that_is_in_use(tmp_path):
    run = RunDir(tmp_path / "r").acquire()
    code = textwrap.dedent(f"""
        import sys
        from clipood.errors import ClipoodError
        from clipood.rundir import RunDir
        try:
            RunDir({str(run.path)!r}).acquire()
        except ClipoodError as e:
            print(e); sys.exit(3)
    """)
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.returncode == 3 and f"in use by another clipood process (PID {os.getpid()})" in other.stdout
    run.release()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout


def test_a_resumed_or_finished_run_removes_what_killed_writers_left(tiny_config, monkeypatch):
    cfg = tiny_config
    cfg.train.checkpoint_every = 3
    run = _stopped_run(cfg, monkeypatch)
    debris = [run.path / "checkpoints" / ".step-00000006.pt.abc123.tmp", run.path / "model" / ".x.safetensors.q.tmp"]
    for p in debris:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert not any(p.exists() for p in debris) and not (run.path / "checkpoints").exists()

    # killed between results.json and the removal of checkpoints: the next touch removes them
    (run.path / "checkpoints").mkdir()
    (run.path / "checkpoints" / "step-00000003.pt").write_bytes(b"old")
    from clipood.commands import resume_config
    with pytest.raises(ClipoodError, match="already finished"):
        resume_config(run)
    assert not (run.path / "checkpoints").exists()


# ------------------------------------------------------------------ the record says what was run (issue 23)


def _edit_config(run: RunDir, old: str, new: str) -> None:
    path = run.path / "config.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_resume_refuses_edited_lr_case1(tiny_config, monkeypatch):
    cfg = tiny_config
    cfg.train.checkpoint_every = 3
    run = _stopped_run(cfg, monkeypatch)
    _edit_config(run, "lr: 0.001", "lr: 0.5")
    with pytest.raises(ClipoodError, match=r"config.yaml changed since its checkpoint.*--lr \(optim.lr\) was 0.001, "
                                           r"is now 0.5"):
        run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert not (run.path / "results.json").exists()


def test_resume_refuses_edited_steps_case2(tiny_config, monkeypatch):
    cfg = tiny_config
    cfg.train.steps, cfg.train.checkpoint_every = 12, 6
    run = _stopped_run(cfg, monkeypatch, at=6)
    _edit_config(run, "steps: 12", "steps: 4")
    with pytest.raises(ClipoodError, match=r"--steps \(train.steps\) was 12, is now 4"):
        run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert not (run.path / "results.json").exists()


def test_resume_takes_edited_runtime_options_and_refuses_other_fields_case1(tiny_config, monkeypatch):
    """Variants: a runtime option (of how the run runs) edited in config.yaml is taken; templates, seed and the loss
    are refused."""
    cfg = tiny_config
    cfg.train.checkpoint_every = 3
    run = _stopped_run(cfg, monkeypatch)
    original = (run.path / "config.yaml").read_text()
    for old, new, named in (("\n  seed: 0", "\n  seed: 1", "--seed (train.seed)"),
                            ("- auto", "- a drawing of a {}.", "--template (model.templates)"),
                            ("name: mms", "name: metric_softmax", "--loss (loss.name)"),
                            ("val_fraction: 0.2", "val_fraction: 0.3", "--val-fraction (data.val_fraction)")):
        (run.path / "config.yaml").write_text(original)
        _edit_config(run, old, new)
        with pytest.raises(ClipoodError, match=re.escape(named)):
            run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    (run.path / "config.yaml").write_text(original)
    _edit_config(run, "log_every: 10", "log_every: 1")  # how it runs: allowed, as --log-every on the command line
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert results["resumed_from_step"] == 3


# ------------------------------------------------------------------ issue 23, case 7c: damaged files on --resume


def _resume_cli(run: RunDir, capsys) -> tuple[int, str]:
    """The exit status and stderr without the note on the tiny model's random weights."""
    from clipood.cli import main
    capsys.readouterr()
    code = main(["train", "--resume", str(run.path), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, "\n".join(ln for ln in lines if "starting from random weights" not in ln)


def test_a_non_utf8_checksum_file_is_a_damaged_checkpoint_case7c(tmp_path, capsys):
    for step in (2, 4):
        ckpt.save_checkpoint(tmp_path, step, _state(float(step)), keep=2)
    sums = checksum_path(checkpoint_dir(tmp_path) / "step-00000004.pt")
    sums.write_bytes(b"\xff\xfe\x00garbage\n")
    assert ckpt.load_latest(tmp_path)["step"] == 2
    assert "skipped step-00000004.pt (its checksum file step-00000004.pt.sha256 is not a SHA-256 line" in \
        capsys.readouterr().err


def test_a_checkpoint_of_another_kind_with_a_valid_checksum_case7c(tiny_config, monkeypatch, capsys):
    cfg = tiny_config
    cfg.train.checkpoint_every = 3
    run = _stopped_run(cfg, monkeypatch)
    ckpt.save_checkpoint(run.path, 4, {"model": {"w": torch.zeros(2)}}, keep=5)  # a pretraining-like state
    code, err = _resume_cli(run, capsys)
    assert code == 0, err
    assert "skipped step-00000004.pt (not a checkpoint of this kind of run (no 'tracked'" in err
    assert json.loads((run.path / "results.json").read_text())["resumed_from_step"] == 3


def _edited_checkpoint(cfg, monkeypatch, edit):
    """A run stopped at step 3 whose checkpoint is written again after ``edit(state)``; its run and path."""
    cfg.train.checkpoint_every = 3
    run = _stopped_run(cfg, monkeypatch)
    path = checkpoint_dir(run.path) / "step-00000003.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    del state["step"]
    ckpt.save_checkpoint(run.path, 3, state, keep=5)
    return run, path


def test_a_checkpoint_of_an_older_clipood_resumes(tiny_config, monkeypatch, capsys):
    """Checkpoints written before the tracked tensors had their name keep them under 'trained'."""
    run, _ = _edited_checkpoint(tiny_config, monkeypatch, lambda state: state.update(trained=state.pop("tracked")))
    code, err = _resume_cli(run, capsys)
    assert code == 0, err
    assert json.loads((run.path / "results.json").read_text())["resumed_from_step"] == 3


def test_a_checkpoint_whose_tensors_do_not_fit_is_one_line_case7c(tiny_config, monkeypatch, capsys):
    def other_shapes(state):  # the same number of tensors
        state["tracked"] = [t[..., :1].clone() if t.dim() else t for t in state["tracked"]]
    run, path = _edited_checkpoint(tiny_config, monkeypatch, other_shapes)
    code, err = _resume_cli(run, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"clipood: error: --resume: {path} does not match this model (its tracked tensors have other shapes" in err


@pytest.mark.parametrize("content", [b'{"sketch/in": {"accuracy": 0.5', b'[1, 2, 3]\n', b'\xff\xfe binary'])
def test_a_damaged_zeroshot_json_on_resume_is_one_line_case7c(tiny_config, monkeypatch, capsys, content):
    cfg = tiny_config
    cfg.train.checkpoint_every, cfg.eval.zeroshot = 3, True
    run = _stopped_run(cfg, monkeypatch)
    (run.path / "zeroshot.json").write_bytes(content)
    code, err = _resume_cli(run, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(run.path / "zeroshot.json") in err and "delete it and resume" in err


def test_binary_bytes_in_metrics_jsonl_on_resume_case7c(tiny_config, monkeypatch, capsys):
    cfg = tiny_config
    cfg.train.checkpoint_every, cfg.train.log_every = 3, 1
    run = _stopped_run(cfg, monkeypatch)
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe\x00\x01 torn\n[1, 2]\n")
    code, err = _resume_cli(run, capsys)
    assert code == 0, err
    assert f"{run.path / 'metrics.jsonl'}: dropped 2 line(s) that are not metrics records" in err
    steps = [json.loads(ln)["step"] for ln in (run.path / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in ln]
    assert steps == list(range(1, cfg.train.steps + 1))


def test_resume_refuses_same_size_images_swapped_between_classes_case5c(tiny_config, shapes_root, tmp_path,
                                                                      monkeypatch):
    import shutil

    from PIL import Image
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    a, b = root / "photo" / "circle" / "0000.png", root / "photo" / "star" / "0000.png"
    for path, value in ((a, 40), (b, 200)):  # uncompressed: two different images of the same size in bytes
        Image.new("RGB", (64, 64), (value, value, value)).save(path, compress_level=0)
    assert a.stat().st_size == b.stat().st_size
    cfg = tiny_config
    cfg.data.root, cfg.train.checkpoint_every = str(root), 3
    run = _stopped_run(cfg, monkeypatch)
    tmp = root / "swap.tmp"
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)
    with pytest.raises(DataError, match=r"changed since the checkpoint \(the same number of images \(192\), but paths "
                                        r"or contents differ\)"):
        run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    os.rename(a, tmp)  # swapped back: the same bytes under each name, so the run continues
    os.rename(b, a)
    os.rename(tmp, b)
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert results["resumed_from_step"] == 3


def test_resume_takes_a_moved_dataset_of_the_same_images_case1(tiny_config, shapes_root, tmp_path, monkeypatch,
                                                               capsys):
    """A variant: the data staged to another folder (a cluster's node-local disk) with config.yaml's root edited
    is the same data, checked by content; other images there are refused as before."""
    import shutil
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(shapes_root, first)
    cfg = tiny_config
    cfg.data.root, cfg.train.checkpoint_every = str(first), 3
    run = _stopped_run(cfg, monkeypatch)
    shutil.copytree(first, second)
    _edit_config(run, f"root: {first}", f"root: {second}")
    png = sorted(second.glob("photo/circle/*.png"))[0]
    original = png.read_bytes()
    png.write_bytes(sorted(second.glob("photo/star/*.png"))[0].read_bytes())
    with pytest.raises(DataError, match="changed since the checkpoint"):
        run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    png.write_bytes(original)
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert results["resumed_from_step"] == 3
    assert f"--root (data.root) moved from {first} to {second}; the data there is checked by its contents" in \
        capsys.readouterr().err


def test_a_folder_under_a_checkpoints_name_is_skipped_case7c(tmp_path, capsys):
    ckpt.save_checkpoint(tmp_path, 2, _state(2.0), keep=5)
    bogus = checkpoint_dir(tmp_path) / "step-00000004.pt"
    bogus.mkdir()
    checksum_path(bogus).write_text("0" * 64 + "  step-00000004.pt\n")
    assert ckpt.load_latest(tmp_path)["step"] == 2
    assert "skipped step-00000004.pt (unreadable (Is a directory))" in capsys.readouterr().err


def _stopped_before_its_first_checkpoint(cfg, monkeypatch) -> RunDir:
    """A run with a zero-shot evaluation, stopped at step 2 with no checkpoint written."""
    from clipood.training import loop
    cfg.eval.zeroshot, cfg.train.checkpoint_every = True, 0
    real, calls = loop.train_step, {"n": 0}

    def dies_at_step_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(loop, "train_step", dies_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, progress=False)
    monkeypatch.setattr(loop, "train_step", real)
    return RunDir(cfg.run.output_dir + "/" + cfg.run.name)


def test_resume_without_a_checkpoint_after_an_edit_makes_the_zero_shot_again_case1(tiny_config, monkeypatch, capsys):
    """A variant: config.yaml edited (templates) before a resume that finds no checkpoint: the run starts again
    with the edited options, and its zero-shot evaluation of the old templates is not kept as this run's."""
    run = _stopped_before_its_first_checkpoint(tiny_config, monkeypatch)
    stale = json.loads((run.path / "zeroshot.json").read_text())
    for entry in stale.values():
        entry["accuracy"] = 0.123456  # a value no evaluation of these 8 classes gives: must not come back
    (run.path / "zeroshot.json").write_text(json.dumps(stale))
    _edit_config(run, "- auto", "- a drawing of a {}.")
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert all(e["accuracy"] != 0.123456 for e in results["zeroshot"].values())
    assert "config.yaml changed since the run started (model.templates) and no checkpoint holds any training: " \
           "starting again from step 0 with it (zeroshot.json made again)" in capsys.readouterr().err


def test_resume_without_a_checkpoint_and_no_edit_keeps_the_zero_shot_case1(tiny_config, monkeypatch):
    run = _stopped_before_its_first_checkpoint(tiny_config, monkeypatch)
    kept = json.loads((run.path / "zeroshot.json").read_text())
    _, results = run_train(RunDir.open(run.path)[1], resume=run, progress=False)
    assert results["zeroshot"] == kept
