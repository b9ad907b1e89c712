"""Finished runs found under a folder, as flat records the tables and plots are built from.

A run made by ``clipood sweep`` says what it is in ``sweep.json`` (method, dataset,
held-out domains, seed, variant); a run made by ``clipood train`` / ``zeroshot`` is read
from its ``results.json`` and ``config.yaml`` (method from its loss and averaging,
dataset from its folder name). A WiSE-FT run becomes one record per alpha.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..config import flatten, irrelevant_keys, variant_keys
from ..methods import METHODS, infer_method, registered
from .stats import harmonic, mean

__all__ = ["RunRecord", "SKIP_DIRS", "VARIANT_KEYS", "add_derived_zeroshot", "collect", "headline", "method_order",
           "read_run"]

SKIP_DIRS = {".sweep", "model", "checkpoints", "report"}
# Options that make two runs of a method different variants when no sweep.json says so.
VARIANT_KEYS = variant_keys()


@dataclass
class RunRecord:
    path: Path
    method: str
    dataset: str
    holdout: tuple[str, ...]
    seed: int
    base_to_new: bool
    variant: dict[str, Any]
    evals: dict[str, dict]  # split name -> {role, domain, accuracy[, base, new, H]}
    kind: str = "train"
    zeroshot: Optional[dict] = None
    domains: list[str] = field(default_factory=list)
    train_domains: list[str] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)  # lambda, beta, lr, steps, arch, batch_size, alpha, ...
    derived: bool = False  # a zero-shot record taken from a training run's pre-training evaluation
    protocol: str = "clipood"  # how domain-split data was split and scored (results.json; --protocol)

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def entries(self, *roles: str) -> list[dict]:
        return [e for e in self.evals.values() if e.get("role") in roles]

    def test_entries(self) -> list[dict]:
        """The reported split(s): role 'test'; without a held-out domain or test set, the validation splits."""
        return self.entries("test") or self.entries("val")

    def headline(self) -> float:
        """One number per run for plots: held-out accuracy (H with base/new classes)."""
        return headline(self.evals, self.base_to_new)


def headline(evals: dict, base_to_new: bool) -> float:
    """Held-out accuracy of an evaluation (test splits, else validation); H of base and new with a class split."""
    es = [e for e in evals.values() if e.get("role") == "test"] or [e for e in evals.values() if e.get("role") == "val"]
    if base_to_new:
        return harmonic(mean(e.get("base") for e in es), mean(e.get("new") for e in es))
    return mean(e.get("accuracy") for e in es)


def _hparams(cfg: dict, results: dict) -> dict[str, Any]:
    """The options the report shows and plots: config.yaml, else what results.json says."""
    f = flatten(cfg)
    backbone = results.get("backbone") if isinstance(results.get("backbone"), dict) else {}
    return {"lambda": f.get("loss.margin_lambda"), "beta": f.get("averaging.beta"),
            "ema_decay": f.get("averaging.ema_decay"), "lr": f.get("optim.lr"),
            "steps": f.get("train.steps", results.get("steps")), "averaging": f.get("averaging.name"),
            "loss": f.get("loss.name"), "arch": f.get("model.arch", backbone.get("arch")),
            "pretrained": backbone.get("weights") or ("none (random weights)" if "model.pretrained" in f and
                                                      f["model.pretrained"] is None else f.get("model.pretrained")),
            "batch_size": f.get("train.batch_size"),
            "accum_steps": f.get("train.accum_steps"), "trainable": f.get("model.trainable")}


def _config_variant(cfg_dict: dict) -> dict[str, Any]:
    from ..config import from_dict
    try:
        cfg = from_dict(cfg_dict)
    except Exception:  # an old or foreign config: no variant information
        return {}
    flat = flatten(cfg_dict)
    ignored = irrelevant_keys(cfg)
    return {k: flat.get(k) for k in VARIANT_KEYS if k not in ignored}


def _load(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"clipood report: skipping {path}: unreadable ({e})", file=sys.stderr)
        return None


def read_run(run_dir: Path) -> list[RunRecord]:
    """The records of one finished run directory (several for WiSE-FT: one per alpha)."""
    results = _load(run_dir / "results.json")
    if results is None or not isinstance(results, dict):
        return []
    side = _load(run_dir / "sweep.json") if (run_dir / "sweep.json").is_file() else None
    cfg_dict: dict = {}
    if (run_dir / "config.yaml").is_file():
        try:
            cfg_dict = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            cfg_dict = {}
    kind = results.get("kind", "train")
    if kind == "eval":
        return []
    method = side["method"] if side else infer_method(results)
    dataset = side["dataset"] if side else Path(str(results.get("dataset", run_dir.name))).name
    holdout = tuple(side["holdout"] if side else results.get("holdout_domains") or ())
    seed = int(side["seed"] if side else results.get("seed", (cfg_dict.get("train") or {}).get("seed", 0)))
    b2n = bool(side["base_to_new"] if side else results.get("base_to_new", False))
    variant = dict(side["variant"]) if side else _config_variant(cfg_dict)
    common = dict(path=run_dir, method=method, dataset=dataset, holdout=holdout, seed=seed, base_to_new=b2n,
                  kind=kind, zeroshot=results.get("zeroshot"), domains=list(results.get("domains") or []),
                  train_domains=list(results.get("train_domains") or []), hparams=_hparams(cfg_dict, results),
                  protocol=str(results.get("protocol") or "clipood"))
    if kind == "wise-ft":
        out = []
        for alpha in results.get("alphas", []):
            evals = results["variants"].get(f"alpha={alpha:g}")
            if evals:
                rec = RunRecord(variant={**variant, "alpha": alpha}, evals=evals, **common)
                rec.hparams = {**rec.hparams, "alpha": alpha}
                out.append(rec)
        return out
    evals = results.get("final") if kind == "train" else results.get("zeroshot")
    if not evals:
        return []
    return [RunRecord(variant=variant, evals=evals, **common)]


def collect(runs_dir: Path, exclude: Optional[Path] = None) -> list[RunRecord]:
    """Every finished run under ``runs_dir`` (any depth), in a stable order."""
    runs_dir = Path(runs_dir)
    records: list[RunRecord] = []
    exclude = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(runs_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and (exclude is None or (Path(dirpath) / d).resolve() != exclude))
        if "results.json" in filenames:
            records.extend(read_run(Path(dirpath)))
    records.sort(key=lambda r: (r.dataset, method_order(r.method), r.holdout, repr(sorted(r.variant.items())),
                                r.seed, str(r.path)))
    return records


def method_order(name: str) -> int:
    names = list(METHODS)
    return names.index(registered(name)) if registered(name) in names else len(names)


def add_derived_zeroshot(records: list[RunRecord]) -> list[RunRecord]:
    """Zero-shot records from the training runs' pre-training evaluation, where no zero-shot run exists.

    Every training run evaluates the pre-trained model first (``zeroshot`` in results.json);
    one record per (dataset, held-out, class split, seed) is taken from the first of them.
    """
    have = {(r.dataset, r.holdout, r.base_to_new) for r in records if r.method == "zeroshot"}
    out, seen = list(records), set()
    for r in records:
        key = (r.dataset, r.holdout, r.base_to_new)
        if r.kind != "train" or not r.zeroshot or key in have or (key, r.seed) in seen:
            continue
        seen.add((key, r.seed))
        out.append(RunRecord(path=r.path, method="zeroshot", dataset=r.dataset, holdout=r.holdout, seed=r.seed,
                             base_to_new=r.base_to_new, variant={}, evals=r.zeroshot, kind="zeroshot",
                             domains=r.domains, train_domains=r.train_domains, derived=True, protocol=r.protocol,
                             hparams={k: r.hparams.get(k) for k in ("arch", "pretrained")}))
    out.sort(key=lambda r: (r.dataset, method_order(r.method), r.holdout, repr(sorted(r.variant.items())), r.seed,
                            str(r.path)))
    return out
