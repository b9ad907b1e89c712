"""The commands of one run: zero-shot evaluation, training (Algorithm 1, with resume), evaluation of an
exported model. Each takes a Config (copied and checked, ``config.validate``: the caller's is never
changed), writes its run directory, and returns it with the results dict that ``results.json`` holds.
"""

from __future__ import annotations

import copy
import platform
import time
from pathlib import Path
from typing import Optional

import torch

from ..config import Config, changed_options, profile_of, validate
from ..console import note, warn
from ..data.bad_images import BadImages
from ..data.datasets import splits_by_domain
from ..errors import ClipoodError
from ..evaluation import accuracies, encode_images
from ..io import DiskFull, read_json, write_json
from ..model.backbones import planned_activation
from ..model.weights import check_arch
from ..rundir import CONFIG_RECORD, RunDir, default_name
from ..templates import AUTO
from ..training import checkpoint as ckpt
from ..training import distributed
from ..training.experiment import Model, build_experiment, build_model, prepare_data
from ..training.loop import RENAMED_KEYS, STATE_KEYS, fit
from .export import export_model, exported_model_dir, is_export, load_exported_head, read_model_meta

__all__ = ["evaluate", "evaluate_model", "resume_config", "train", "zeroshot"]


def evaluate_model(exp: Model, bad: BadImages, *, progress: bool = True, desc: str = "eval") -> dict:
    """Accuracy on every evaluation split with the model's current weights.

    With N processes, each encodes every N-th image once and the features are all-gathered:
    every rank scores the same features and returns the same accuracies.
    """
    dist = exp.dist
    indices = sorted({i for es in exp.splits.evals for i in es.indices})
    feats, ids = encode_images(
        exp.classifier.visual, exp.index, indices[dist.rank::dist.world_size], exp.backbone.preprocess_val,
        batch_size=exp.cfg.eval.batch_size, device=exp.device, workers=exp.cfg.data.workers,
        autocast_dtype=exp.autocast_dtype, on_bad=bad, desc=desc, progress=progress and dist.is_main)
    feats, ids = dist.all_gather_rows(feats), dist.all_gather_rows(ids)
    return accuracies(feats, ids, exp.index, exp.splits.evals, exp.class_weights(),
                    exp.splits.base_classes, exp.splits.new_classes)


def results_summary(exp: Model) -> dict:
    s = exp.splits
    return {
        "dataset": str(exp.index.root), "domains": exp.index.domains, "num_classes": exp.index.num_classes,
        "train_domains": s.train_domains, "holdout_domains": exp.cfg.data.holdout_domains,
        "base_to_new": exp.cfg.data.base_to_new, "train_images": len(s.train),
        "eval_sets": {es.name: {"role": es.role, "n": len(es.indices),
                                **({"classes": len(es.classes)} if es.classes is not None else {})}
                      for es in s.evals},
        "benchmark": exp.cfg.data.dataset,
        "backbone": {"arch": exp.backbone.arch, "weights": exp.backbone.weights.about if exp.backbone.weights else None,
                     "learned_logit_scale": exp.backbone.logit_scale, "activation": exp.backbone.activation,
                     "interpolation": exp.backbone.preprocess_cfg.get("interpolation")},
        "templates": exp.templates,
        "protocol": s.protocol,
        "profile": profile_of(exp.cfg, splits_by_domain(exp.cfg.data.dataset)),
        "test_split_note": test_split_note(s),
    }


def test_split_note(s) -> str:
    """Which split each reported number is on, in words (results.json)."""
    if s.protocol == "official":
        return ("the official code's protocol: held-out domains are tested on their 'out' split (leave-one-domain-out) "
                "or, with base and new classes, on all their images, base and new each scored among all classes; "
                "training domains' 'out' split is validation")
    if all(es.split in ("in", "out") for es in s.evals):
        return ("held-out domains are reported on their 'in' split (DomainBed); 'out' is the oracle selection split; "
                "training domains' 'out' split is validation")
    return ("the dataset's own splits: 'val' is validation, 'test' the test sets; sets with 'classes' are scored among "
            "that many classes only (ImageNet-A/-R)")


def record_notes(cfg: Config) -> dict[str, str]:
    """Comments for config.yaml: what its 'auto' model options resolve to."""
    notes = {}
    if cfg.model.activation == "auto":
        notes["model.activation"] = f"built: {planned_activation(cfg.model.arch, cfg.model.pretrained)}"
    return notes


def environment(exp: Model) -> dict:
    dev = exp.device
    return {"torch": torch.__version__, "python": platform.python_version(), "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            "autocast": str(exp.autocast_dtype).replace("torch.", "") if exp.autocast_dtype else "fp32",
            "world_size": exp.dist.world_size}


def preflight(cfg: Config, training: bool = True):
    """Check the data and the architecture before a run directory is made or anything loads."""
    weights = check_arch(cfg.model.arch, cfg.model.pretrained)
    data = prepare_data(cfg, training)
    if weights.kind == "random":
        note(f"starting from {weights.about}: zero-shot and fine-tuned numbers mean little without pretrained "
             f"weights")
    return data


def _open_for_resume(run: RunDir) -> RunDir:
    """Take the run (one process at a time) and clear what a killed writer left in it."""
    run.acquire()
    run.tidy()
    return run


def zeroshot(cfg: Config, *, progress: bool = True, save_model: bool = False) -> tuple[RunDir, dict]:
    """The pre-trained model's accuracy on every split of the protocol (no training); with ``save_model``
    the model and its class-text head are also exported to RUN/model (the zero-shot end of WiSE-FT)."""
    cfg = validate(copy.deepcopy(cfg), training=False)
    with distributed.session(cfg.compute.device) as dist:
        return _run_zeroshot(cfg, progress and dist.is_main, dist, save_model)


def _run_zeroshot(cfg: Config, progress: bool, dist: distributed.DistContext,
                  save_model: bool = False) -> tuple[RunDir, dict]:
    data = preflight(cfg, training=False)
    run = distributed.shared_run(dist, lambda: RunDir.create(cfg, name=lambda c: default_name(c, "zeroshot"),
                                                             notes=record_notes(cfg)))
    try:
        run.track(cfg.run.report_to, cfg)
        return _zeroshot_in(run, cfg, data, progress, dist, save_model)
    finally:
        run.release()


def _zeroshot_in(run: RunDir, cfg: Config, data, progress: bool, dist, save_model: bool) -> tuple[RunDir, dict]:
    exp = build_model(cfg, data=data, dist=dist)
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    zeroshot = evaluate_model(exp, bad, progress=progress)
    bad.gather(dist)
    results = {"kind": "zeroshot", **results_summary(exp), "zeroshot": zeroshot,
               "environment": environment(exp), "bad_images": len(bad.items())}
    if bad.items():
        run.write_bad_images(bad.items())
    if save_model and dist.is_main:
        export_model(exp, run.model_dir)
    run.write_results(results)
    return run, results


def read_zeroshot(path: Path) -> dict:
    """A resumed run's zero-shot evaluation (written before its first step), or one line naming the file."""
    fix = "delete it and resume: the zero-shot evaluation is made again"
    try:
        data = read_json(path, "--resume")
    except ClipoodError as e:
        raise ClipoodError(f"{e}; or {fix}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ClipoodError(f"--resume: {path} is not a zero-shot evaluation (a mapping of splits to accuracies, here "
                           f"a JSON {type(data).__name__}); {fix}")
    return data


def train(cfg: Config, *, resume: Optional[RunDir] = None, progress: bool = True,
          allow_changed_data: bool = False) -> tuple[RunDir, dict]:
    """Zero-shot eval (optional), Algorithm 1, final eval of the averaged model, export.

    Under torchrun every process runs this; see ``distributed`` for how the work is split.
    """
    cfg = validate(copy.deepcopy(cfg))
    with distributed.session(cfg.compute.device) as dist:
        data = preflight(cfg)
        if resume is not None:
            run = distributed.shared_run(dist, lambda: _open_for_resume(resume))
        else:
            run = distributed.shared_run(dist, lambda: RunDir.create(cfg, notes=record_notes(cfg)))
        try:
            run.track(cfg.run.report_to, cfg)
            return _run_train(cfg, run, data, resume is not None, progress and dist.is_main, dist, allow_changed_data)
        finally:
            run.release()


def _restart_records(run: RunDir, cfg: Config) -> None:
    """A resume with no checkpoint starts again from step 0 with config.yaml as it is now. If it was edited since
    the run started, what the first start recorded with the other options (its zero-shot evaluation, the images
    it skipped) goes, and the note names the options; nothing trained is lost, there was no checkpoint."""
    path = run.path / CONFIG_RECORD
    try:
        saved = read_json(path) if path.is_file() else None
    except ClipoodError:
        saved = {}  # a damaged record: take the options as changed
    if saved is None:
        return  # a run of an older clipood: nothing to compare with
    changed = changed_options(saved, cfg) if isinstance(saved, dict) else ["(unreadable record)"]
    if not changed:
        return
    gone = [n for n in ("zeroshot.json", "bad_images.txt") if (run.path / n).is_file()]
    for n in gone:
        (run.path / n).unlink()
    note(f"--resume: config.yaml changed since the run started ({', '.join(changed[:5])}) and no checkpoint holds "
         f"any training: starting again from step 0 with it" + (f" ({', '.join(gone)} made again)" if gone else ""))
    run.write_config_record(cfg)


def _run_train(cfg: Config, run: RunDir, data, resuming: bool, progress: bool, dist: distributed.DistContext,
               allow_changed_data: bool) -> tuple[RunDir, dict]:
    exp = build_experiment(cfg, data=data, dist=dist)
    state = ckpt.load_latest(run.path, required=STATE_KEYS, renamed=RENAMED_KEYS) if resuming else None
    if resuming and state is None and dist.is_main:
        _restart_records(run, cfg)
    dist.barrier()
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    zs_path = run.path / "zeroshot.json"
    zeroshot = None
    if dist.broadcast_object(cfg.eval.zeroshot and not zs_path.exists()):  # rank 0 decides: eval is collective
        zeroshot = evaluate_model(exp, bad, progress=progress, desc="zero-shot eval")
        if dist.is_main:
            write_json(zs_path, zeroshot)
    elif zs_path.exists():
        zeroshot = read_zeroshot(zs_path)

    t0 = time.time()
    bad = fit(exp, run, resume_state=state, progress=progress, allow_changed_data=allow_changed_data,
              evaluate_fn=lambda progress: evaluate_model(exp, BadImages("skip", exp.index.paths),
                                                               progress=progress))
    train_time = time.time() - t0
    average = exp.averager.summary()
    if average is not None and not average["converged"]:
        warn(f"--averaging {cfg.averaging.name}: the validation loss never converged (no window); the model is the "
             f"last segment's average. Train longer or shorten --swad-segment")
    final = evaluate_model(exp, bad, progress=progress, desc="final eval")
    run.log({"step": cfg.train.steps, "eval": final, "final": True})
    if dist.is_main:
        try:
            export_model(exp, run.model_dir)
        except DiskFull as e:
            raise e.with_hint("the model was not saved; the run's checkpoints are intact (they go only once the "
                              "model and results are written); free space and continue with "
                              f"'clipood train --resume {run.path}'") from None
    bad.gather(dist)
    if bad.items():
        run.write_bad_images(bad.items())
    results = {
        "kind": "train", "method": {"tuning": cfg.tuning.name, "loss": cfg.loss.name, "averaging": cfg.averaging.name,
                                    "lambda": cfg.loss.margin_lambda, "beta": cfg.averaging.beta,
                                    "temperature": exp.temperature, "norm_layers": cfg.train.norm_layers},
        **results_summary(exp), "steps": cfg.train.steps, "seed": cfg.train.seed,
        "zeroshot": zeroshot, "final": final, "train_time_s": round(train_time, 2),
        "resumed_from_step": int(state["step"]) if state is not None else None,  # train_time_s: since then
        "average_extra_bytes": exp.averager.nbytes(), "environment": environment(exp),
        **({"average": average} if average is not None else {}),
        "bad_images": len(bad.items()),
    }
    run.write_results(results)
    if dist.is_main:
        run.tidy()  # the finished run's model/ supersedes its checkpoints; temporary files of killed writers go
    dist.barrier()  # every rank returns once rank 0's files are written
    return run, results


def evaluate(cfg: Config, model_dir: Optional[Path] = None, out: Optional[Path] = None, *,
             progress: bool = True) -> dict:
    """Evaluate a model folder (``RUN/model``, or a plain open_clip folder) on cfg's dataset and protocol; without
    one, the CLIP that cfg.model names (any architecture and weights, zero-shot over the class texts)."""
    if out is not None and Path(out).is_dir():
        raise ClipoodError(f"--out: {out} is a folder; give the JSON file to write, e.g. {Path(out) / 'eval.json'}")
    cfg = validate(copy.deepcopy(cfg), training=False)
    with distributed.session(cfg.compute.device) as dist:
        return _run_eval(cfg, model_dir, out, progress and dist.is_main, dist)


def use_model_folder(cfg: Config, model_dir: Path) -> None:
    """cfg's model becomes the folder's: its architecture, weights, activation and interpolation; with 'auto' templates
    (the default), an export's own templates and tau (clipood.json)."""
    cfg.model.arch, cfg.model.pretrained = f"local-dir:{model_dir}", "auto"
    cfg.model.activation = cfg.model.interpolation = "auto"  # the exported model's own, recorded with it
    if is_export(model_dir):
        m = read_model_meta(model_dir)
        if cfg.model.templates == [AUTO]:
            cfg.model.templates = m.get("templates", cfg.model.templates)
        cfg.loss.temperature = m.get("temperature", cfg.loss.temperature)


def _run_eval(cfg: Config, model_dir: Optional[Path], out: Optional[Path], progress: bool,
              dist: distributed.DistContext) -> dict:
    if model_dir is not None:
        model_dir = exported_model_dir(model_dir)
        use_model_folder(cfg, model_dir)
    exp = build_model(cfg, data=preflight(cfg, training=False), dist=dist)
    if model_dir is not None:
        load_exported_head(exp, model_dir)
    bad = BadImages(cfg.data.bad_images, exp.index.paths)
    results = {"kind": "eval", "model": str(model_dir) if model_dir is not None else exp.backbone.weights.about,
               **results_summary(exp), "final": evaluate_model(exp, bad, progress=progress),
               "environment": environment(exp)}
    if out is not None and dist.is_main:
        write_json(out, results)
    return results


def resume_config(run: RunDir) -> Config:
    _, cfg = RunDir.open(run.path)
    if (run.path / "results.json").exists():
        with run.owned():
            run.tidy()  # checkpoints a kill left between results.json and their removal
        raise ClipoodError(f"--resume: {run.path} is already finished (results.json exists)")
    return cfg
