"""The commands around a trained model: ``predict``, ``wise-ft MODEL_A MODEL_B``, ``export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .command import Command, progress
from .flags import add_config_flags, option_help

__all__ = ["COMMANDS"]


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or list files.")
    p.add_argument("--model", metavar="DIR", help="exported model folder (runs/NAME/model), its run folder, or a plain "
                   "open_clip folder (which needs --classes); or give --arch instead.")
    p.add_argument("--arch", metavar="NAME", help="instead of --model, any CLIP (needs --classes): "
                   + option_help("model.arch"))
    p.add_argument("--pretrained", metavar="TAG", help="with --arch: " + option_help("model.pretrained"))
    p.add_argument("--classes", metavar="A,B,C", help="comma-separated class names to score.")
    p.add_argument("--classes-file", metavar="FILE", help="class names, one per line ('#' lines skipped).")
    p.add_argument("--template", action="append", metavar="VALUE", help="prompt template(s) for --classes: a "
                   "template with '{}', a preset (openai-imagenet, simple) or a file; repeatable (default: an "
                   "export's own templates, else 'a photo of a {}.').")
    p.add_argument("--out", default="predictions.csv", metavar="CSV", help="where the predictions go.")
    p.add_argument("--top-k", type=int, default=5, help="labels per image.")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass.")
    p.add_argument("--workers", type=int, default=0, help="image-decoding worker processes.")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N.")
    p.add_argument("--bad-images", choices=("fail", "skip"), default="fail", help="an unreadable image stops the "
                   "run naming it (fail) or gets an empty row with its error (skip), as in training.")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar.")


def _predict(args: argparse.Namespace) -> int:
    from ..commands.predict import predict, read_classes, write_predictions
    pred = predict(args.model, args.inputs, classes=read_classes(args.classes, args.classes_file),
                   templates=args.template, top_k=args.top_k, batch_size=args.batch_size, workers=args.workers,
                   device=args.device, bad_images=args.bad_images, progress=progress(args), arch=args.arch,
                   pretrained=args.pretrained)
    out = write_predictions(pred, args.out, args.top_k)
    print(pred.summary())
    print(f"predictions: {out}")
    return 0


def _wise_ft_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help="MODEL_A MODEL_B: model folders (exported, their run "
                   "folders, or plain open_clip folders) at alpha = 0 (e.g. a zero-shot model) and alpha = 1 (e.g. a "
                   "fine-tuned one); or MODEL_B alone, with model A the CLIP --arch and --pretrained name.")
    p.add_argument("--alphas", default="0:1:0.1", help="START:STOP:STEP (stop included) or a list 0,0.5,1.")
    p.add_argument("--output-dir", default="runs", metavar="DIR", help="parent folder of the WiSE-FT run.")
    p.add_argument("--name", metavar="NAME", help="run folder name (default: wise-ft-<time>).")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars.")
    add_config_flags(p, "eval")


def _wise_ft(args: argparse.Namespace) -> int:
    from ..commands.wise_ft import alpha_plot, parse_alphas, wise_ft_models, wise_ft_table
    from ..errors import ClipoodError
    from .flags import check_model_or_arch, config_from_args
    cfg, given = config_from_args(args)
    if len(args.models) > 2:
        raise ClipoodError(f"wise-ft: {len(args.models)} models given; give MODEL_A MODEL_B, or MODEL_B with --arch")
    if len(args.models) == 2:
        check_model_or_arch(given, "MODEL_A")
    elif "model.arch" not in given:
        raise ClipoodError("wise-ft: one model given; give MODEL_A MODEL_B, or MODEL_B with model A named by --arch "
                           "NAME --pretrained TAG (e.g. the pre-trained CLIP that MODEL_B was fine-tuned from)")
    cfg.run.output_dir, cfg.run.name = args.output_dir, args.name or cfg.run.name
    model_a = Path(args.models[0]) if len(args.models) == 2 else None
    run, results = wise_ft_models(model_a, Path(args.models[-1]), cfg, parse_alphas(args.alphas),
                                  progress=progress(args))
    print(wise_ft_table(results))
    plot = alpha_plot(results, run.path / "wise_ft.png")
    print(f"\nalpha chosen: {results['selected_alpha']:g} ({results['selection']}); its model: "
          f"{run.model_dir}; plot: {plot}")
    print(f"run directory: {run.path}")
    return 0


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="exported model folder (RUN_DIR/model) or a run folder.")
    p.add_argument("--hf", required=True, metavar="DIR", help="the folder to write (must be new or empty).")
    p.add_argument("--push", metavar="REPO", help="also upload to this Hub repository (ORG/NAME).")
    p.add_argument("--private", action="store_true", help="with --push: create the repository private.")


def _export(args: argparse.Namespace) -> int:
    from ..commands.hub import export_hf
    if args.private and not args.push:
        from ..console import warn
        warn("--private: applies with --push (a repository to create); ignored")
    out = export_hf(Path(args.model), Path(args.hf), push=args.push, private=args.private)
    print(f"Hugging Face layout written to {out}" + (f"; pushed to {args.push}" if args.push else ""))
    return 0


COMMANDS = [
    Command("predict", "classify images with an exported model or any CLIP over class names given now.",
            "Classify image files, folders (every image below) or list files (.txt/.lst, a path per line) with an "
            "exported model (RUN_DIR/model) or any CLIP (a plain open_clip folder as --model, or --arch NAME "
            "--pretrained TAG). Class names are given now (--classes / --classes-file): new classes need "
            "no training, since the text tower is frozen; without them an export's own classes and head are used. "
            "Writes a CSV (path, top-k labels and softmax scores, error) and prints a summary.",
            _predict_arguments, _predict),
    Command("wise-ft", "interpolate the weights of two models of one architecture and evaluate each mix.",
            "WiSE-FT (Wortsman et al., 2022) between any two models of one architecture (exported or plain open_clip "
            "folders; model A may be a CLIP by name, --arch NAME --pretrained TAG): theta(alpha) = "
            "(1 - alpha) MODEL_A + alpha MODEL_B for each --alphas value, evaluated on a dataset with the given "
            "protocol; alpha chosen by training-domain validation, that model exported, a table printed and a plot "
            "written (RUN_DIR/wise_ft.png).", _wise_ft_arguments, _wise_ft),
    Command("export", "write an exported model in open_clip's Hugging Face Hub layout (+ card).",
            "Write RUN_DIR/model (or any exported model folder) in open_clip's Hugging Face layout with open_clip's "
            "save_for_hf (open_clip_config.json, open_clip_model.safetensors, tokenizer files) and a model card "
            "(README.md) stating the method, data, settings and results; --push uploads it with open_clip's "
            "push_to_hf_hub (needs the network and a Hugging Face token).", _export_arguments, _export),
]
