"""``clipood train``, ``zeroshot``, ``eval`` and ``pretrain``: the commands that make a run (or evaluate a model)
from config options, each option a flag (``flags``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from ..config import DEFAULT_PROFILE, PROFILES, SECTIONS, given_keys
from ..errors import ClipoodError
from ..pretraining.config import PretrainConfig
from .command import Command, progress
from .flags import (
    add_config_flags,
    check_model_or_arch,
    config_from_args,
    flag_overrides,
    resume_overrides,
    warn_inapplicable,
)

__all__ = ["COMMANDS", "print_results", "report_run"]


def _is_main_process() -> bool:
    """Rank 0 under torchrun (the others stay quiet), or a plain single process."""
    return os.environ.get("RANK", "0") == "0"


def print_results(results: dict) -> None:
    from ..reporting.text import results_table
    if _is_main_process():
        print(results_table(results))


def report_run(run, results: dict) -> int:
    """The results table and where the run is (rank 0 only under torchrun); the command's exit status."""
    print_results(results)
    if _is_main_process():
        print(f"run directory: {run.path}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   f"({', '.join(SECTIONS)}), and optionally 'profile: NAME'; flags override it.")
    p.add_argument("--profile", choices=tuple(PROFILES), help="a named set of option values under --config and the "
                   "flags: " + "; ".join(f"'{n}': {pr.about}" for n, pr in PROFILES.items())
                   + f" (docs/method.md). Default: {DEFAULT_PROFILE}.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def _add_resume(p: argparse.ArgumentParser, what: str, data: str) -> None:
    p.add_argument("--resume", metavar="RUN_DIR", help=f"continue an interrupted {what} from its last intact "
                   "checkpoint (its config.yaml is used, and refused when edited since the checkpoint was written; "
                   "only options of how it runs, such as --workers or --device, may be given).")
    p.add_argument("--allow-changed-data", action="store_true", help=f"with --resume: continue even though {data} "
                   "changed since the run started (by default that is refused).")


def _check_resume(args: argparse.Namespace) -> None:
    if args.allow_changed_data and not args.resume:
        raise ClipoodError("--allow-changed-data: applies only with --resume")
    if args.resume and getattr(args, "method", None):
        raise ClipoodError("--method: a resumed run keeps the method of its config.yaml; leave --method out")


# ---------------------------------------------------------------- train


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from ..methods import METHODS, TRAIN
    _add_common(p)
    _add_resume(p, "run", "the images under --root")
    names = [n for n, m in METHODS.items() if m.kind == TRAIN]
    p.add_argument("--method", choices=names, metavar="NAME",
                   help="a named method: sets --tuning, --loss and --averaging as it defines them, over --config "
                        "(a flag that sets them otherwise is refused); their own options still apply "
                        "(docs/experiments.md#methods). Known: "
                        + ", ".join(names) + ".")
    add_config_flags(p, "train")


def with_method(cfg, flags: set[str], name: str):
    """cfg with the method's tuning, loss and averaging (over --config's); one set to something else by a flag is
    refused, not overridden."""
    from ..config import validate
    from ..errors import ConfigError
    from ..methods import get_method
    method = get_method(name)
    for section, values in method.settings().items():
        for key, value in values.items():
            now = getattr(getattr(cfg, section), key)
            if f"{section}.{key}" in flags and now != value:
                raise ConfigError(f"--method {name}: sets --{section} {value}, and --{section} {now} was given; give "
                                  f"one of them")
    return validate(method.configure(cfg))


def _train(args: argparse.Namespace) -> int:
    from .. import commands
    from ..rundir import RunDir
    _check_resume(args)
    if args.resume:
        run = RunDir(args.resume)
        cfg = resume_overrides(args, commands.resume_config(run))
        run, results = commands.train(cfg, resume=run, progress=progress(args),
                                      allow_changed_data=args.allow_changed_data)
    else:
        cfg, given = config_from_args(args)
        if args.method:
            cfg = with_method(cfg, given_keys(flag_overrides(args)), args.method)
        warn_inapplicable(cfg, given)
        run, results = commands.train(cfg, progress=progress(args))
    return report_run(run, results)


# ---------------------------------------------------------------- zeroshot, eval


def _zeroshot_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--save-model", action="store_true", help="also save the pre-trained model with its class-text "
                   "head as RUN_DIR/model: an exported model for predict, export and wise-ft (its zero-shot end); "
                   "it takes the model's size on disk.")
    add_config_flags(p, "zeroshot")


def _zeroshot(args: argparse.Namespace) -> int:
    from .. import commands
    run, results = commands.zeroshot(config_from_args(args)[0], progress=progress(args), save_model=args.save_model)
    return report_run(run, results)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--model", metavar="DIR", help="exported model folder (runs/NAME/model), its run folder, or a "
                   "plain open_clip folder; without it, the CLIP --arch and --pretrained name is evaluated.")
    p.add_argument("--out", metavar="JSON", help="also write the results to this file.")
    add_config_flags(p, "eval")


def _eval(args: argparse.Namespace) -> int:
    from .. import commands
    cfg, given = config_from_args(args)
    if args.model:
        check_model_or_arch(given, "--model")
    elif "model.arch" not in given:  # never a silent evaluation of the default architecture
        raise ClipoodError("eval: name the model to evaluate: --model DIR (an exported model, its run folder or an "
                           "open_clip folder) or --arch NAME [--pretrained TAG] (any CLIP, e.g. --arch ViT-B-16 "
                           "--pretrained openai)")
    results = commands.evaluate(cfg, Path(args.model) if args.model else None, Path(args.out) if args.out else None,
                                progress=progress(args))
    print_results(results)
    return 0


# ---------------------------------------------------------------- pretrain


def _pretrain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options below, by section "
                   f"({', '.join(f.name for f in dataclasses.fields(PretrainConfig))}); flags override it.")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")
    _add_resume(p, "pretraining run", "the caption table or its images")
    add_config_flags(p, "pretrain", root=PretrainConfig)


def _pretrain(args: argparse.Namespace) -> int:
    from ..pretraining.summary import summary
    from ..pretraining.trainer import open_run, run_pretrain
    _check_resume(args)
    if args.resume:
        run, cfg = open_run(args.resume)
        run, results = run_pretrain(resume_overrides(args, cfg, PretrainConfig), resume=run, progress=progress(args),
                                    allow_changed_data=args.allow_changed_data)
    else:
        cfg, given = config_from_args(args, PretrainConfig())
        warn_inapplicable(cfg, given, PretrainConfig)
        run, results = run_pretrain(cfg, progress=progress(args))
    print(summary(results, run.path))
    return 0


COMMANDS = [
    Command("train", "fine-tune the image tower (CLIPood by default) and evaluate the averaged model.",
            "Fine-tune with Algorithm 1 (MMS loss, BMA averaging by default), evaluate the zero-shot and the averaged "
            "model on every split, save the averaged model.", _train_arguments, _train),
    Command("zeroshot", "evaluate the pre-trained model zero-shot (no training).",
            "Zero-shot accuracy of the pre-trained model on every split of the protocol.", _zeroshot_arguments,
            _zeroshot),
    Command("eval", "evaluate a saved model (RUN_DIR/model) or any CLIP on a dataset.",
            "Evaluate an exported model folder (RUN_DIR/model, an open_clip local-dir folder), a plain open_clip "
            "folder (--model FOLDER) or any CLIP by name (--arch NAME --pretrained TAG, or --arch local-dir:PATH) on "
            "--root with the given protocol.", _eval_arguments, _eval),
    Command("pretrain", "contrastive image-text pretraining (CLIP's loss) of a small backbone, offline.",
            "Pretrain an open_clip model with CLIP's contrastive loss on an image-caption table (open_clip's CSV "
            "convention), leaving out --exclude-domain rows; write an open_clip folder that --arch local-dir:RUN/model "
            "loads, or install it as a pretrained tag with --install-as. See docs/pretrained.md.",
            _pretrain_arguments, _pretrain),
]
