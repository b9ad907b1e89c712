"""Progress in logs: plain lines, no carriage returns or escape codes; tqdm bars on a terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from clipood import console


def test_line_progress_prints_plain_lines_and_a_final_one(capsys):
    bar = console.LineProgress(total=4, desc="train", unit="step", interval=0.0)
    for _ in range(4):
        bar.update(1)
        bar.set_postfix(loss="1.5")
    bar.set_postfix_str("loss=1.5")
    bar.close()
    bar.close()  # twice: one final line
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[:3] == ["train: 1/4 step" + lines[0][len("train: 1/4 step"):]] + lines[1:3]
    assert [x.split(" ")[1] for x in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert " in " in lines[-1] and lines[-1].endswith("loss=1.5") and len(lines) == 4
    assert "\r" not in err and "\x1b" not in err


def test_nested_bars_are_silent_in_a_log(capsys):
    for _ in console.LineProgress(range(3), desc="eval", leave=False, interval=0.0):
        pass
    assert capsys.readouterr().err == ""


def test_progress_is_tqdm_on_a_terminal_only(monkeypatch):
    from tqdm.auto import tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    bar = console.progress_bar(total=2, desc="x")
    assert isinstance(bar, tqdm)
    bar.close()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(console.progress_bar(total=2, desc="x"), console.LineProgress)


def test_train_log_has_no_escape_codes(tiny_pretrained, shapes_root, tmp_path):
    """A whole run with stderr to a file: every bar (train, eval, scan) leaves only plain lines."""
    log = tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "clipood", "train", "--root", str(shapes_root), "--arch",
           f"local-dir:{tiny_pretrained}", "--holdout-domain", "sketch", "--steps", "3", "--batch-size", "2",
           "--workers", "0", "--device", "cpu", "--output-dir", str(tmp_path / "runs"), "--eval-every", "2"]
    with open(log, "w") as f:
        res = subprocess.run(cmd, stderr=f, stdout=subprocess.PIPE, text=True, timeout=300,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = log.read_text()
    assert res.returncode == 0, text[-2000:]
    assert "\r" not in text and "\x1b" not in text
    assert "train: 3/3 step in " in text
    assert "step 2/3:" in text  # the --eval-every line
