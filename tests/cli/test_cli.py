"""The clipood command: help texts, and one clear error line for bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from clipood.cli import build_parser, main
from clipood.config import Config, flag_name, iter_fields


def _subcommands() -> list[str]:
    """Every subcommand the parser defines (nested ones as 'data build'), so none is missed."""
    names = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    names.append(f"{prefix}{name}")
                    walk(sub, f"{prefix}{name} ")
    walk(build_parser(), "")
    return names


SUBCOMMANDS = _subcommands()


def test_help_of_command_and_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "clipood.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout
    assert {"train", "zeroshot", "eval", "pretrain", "sweep", "report", "data build"} <= set(SUBCOMMANDS)
    for sub in SUBCOMMANDS:
        res = subprocess.run([sys.executable, "-m", "clipood.cli", *sub.split(), "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0, (sub, res.stderr)
        assert "usage: clipood" in res.stdout


@pytest.mark.parametrize("command", ["predict", "wise-ft", "export", "sweep"])
def test_every_option_of_the_tool_commands_has_help(command):
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, (command, action.option_strings)
    text = parser.format_help()
    assert {"predict": "--classes-file", "wise-ft": "--alphas", "export": "--push", "sweep": "--slurm-partition"}[
        command] in text


def test_train_help_documents_every_option_with_its_default():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for _, _, f in iter_fields(Config):
        assert f"--{flag_name(f)}" in help_text, f.name
    assert "(default: 0.3)" in help_text and "(default: 0.5)" in help_text
    assert "--report-to" in help_text and "tensorboard" in help_text


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv,expected", [
    (["train", "--root", "/nonexistent/data"], "--root: folder not found: /nonexistent/data"),
    (["train", "--lambda", "-1", "--root", "."], "--lambda: -1.0 is out of range"),
    (["train", "--beta", "0", "--root", "."], "--beta: 0.0 is out of range"),
    (["train", "--lr", "abc", "--root", "."], "--lr (optim.lr): expected float, got 'abc'"),
    (["train", "--steps", "0", "--root", "."], "--steps: 0 is out of range"),
])
def test_bad_options_give_one_line(capsys, argv, expected):
    code, err = _error(capsys, argv)
    assert code == 2
    assert err.startswith("clipood: error: ") and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_unknown_architecture_and_holdout_domain(capsys, shapes_root, tmp_path):
    base = ["train", "--root", str(shapes_root), "--output-dir", str(tmp_path), "--workers", "0", "--no-progress"]
    code, err = _error(capsys, base + ["--arch", "ViT-Nope-99", "--pretrained", "none"])
    assert code == 2 and "--arch: unknown architecture 'ViT-Nope-99'" in err and len(err.splitlines()) == 1
    code, err = _error(capsys, base + ["--arch", "clipood-tiny", "--pretrained", "none", "--holdout-domain", "oil"])
    assert code == 2 and "--holdout-domain: 'oil' is not a domain" in err and "sketch" in err
    code, err = _error(capsys, base + ["--arch", "clipood-tiny", "--pretrained", "nosuchtag"])
    assert code == 2 and "--pretrained: 'nosuchtag'" in err


def test_yaml_config_and_flags_override(tmp_path):
    from clipood.cli import config_from_args
    y = tmp_path / "run.yaml"
    y.write_text("loss:\n  margin_lambda: 0.1\ntrain:\n  steps: 7\n")
    args = build_parser().parse_args(["train", "--config", str(y), "--steps", "9"])
    cfg, _ = config_from_args(args)
    assert cfg.loss.margin_lambda == 0.1 and cfg.train.steps == 9 and cfg.averaging.beta == 0.5


def test_configuration_docs_are_generated_from_the_code():
    from pathlib import Path

    from clipood.config import options_markdown
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == options_markdown(), \
        "regenerate: python -m clipood.config > docs/configuration.md"


def test_train_method_sets_tuning_loss_and_averaging(tiny_config, tmp_path, capsys):
    """`clipood train --method NAME` runs the method as the sweep does; a conflicting --loss is refused."""
    import json

    from clipood.config import save_yaml
    from clipood.methods import METHODS
    cfg_file = tmp_path / "c.yaml"
    tiny_config.train.steps = 2
    save_yaml(tiny_config, cfg_file)
    assert main(["train", "--config", str(cfg_file), "--method", "lp-ft", "--no-progress", "--name", "m"]) == 0
    results = json.loads((tmp_path / "runs" / "m" / "results.json").read_text())
    assert (results["method"]["tuning"], results["method"]["loss"], results["method"]["averaging"]) == \
        METHODS["lp-ft"].parts
    assert main(["train", "--config", str(cfg_file), "--method", "coral", "--loss", "mms", "--no-progress"]) == 2
    assert "--method coral: sets --loss coral, and --loss mms was given; give one of them" in capsys.readouterr().err
