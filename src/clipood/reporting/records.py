"""Finished runs found under a folder, as flat records the tables and plots are built from, and the
one number each run's table shows.

A run made by ``clipood sweep`` says what it is in ``sweep.json`` (method, dataset,
held-out domains, seed, variant); a run made by ``clipood train`` / ``zeroshot`` is read
from its ``results.json`` and ``config.yaml`` (method from its loss and averaging,
dataset from its folder name). A WiSE-FT run becomes one record per alpha.

The number a run's table shows for it (``shown_kind``, ``shown_value``), so that a plot never draws a
number no table has:

* Table 1 (one held-out domain): accuracy on the held-out domain;
* Table 2 (several test sets): OOD avg over the shifted test sets (the one shifted set, or
  the one in-distribution set, where the table has no average);
* Table 3 (base-to-new): H of base and new accuracy on the in-distribution test set(s);
* Table 4 (held-out domain and new classes): Total accuracy on the held-out domain.

A base-to-new run with several held-out domains is in no table, and in no plot.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..averaging import AVERAGERS
from ..config import flatten, irrelevant_keys, moved_keys, variant_keys
from ..console import warn
from ..losses import LOSSES
from ..methods import METHODS, infer_method, registered
from ..tuning import TUNINGS
from .stats import harmonic, mean

__all__ = ["DamagedRun", "HYPERPARAMETERS", "METRIC", "RunRecord", "SKIP_DIRS", "VARIANT_KEYS", "add_derived_zeroshot",
           "collect", "headline", "method_order", "read_run", "shown_kind", "shown_value"]


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
    hparams: dict[str, Any] = field(default_factory=dict)  # lr, steps, arch, batch_size, alpha, the registries'
    # hyper-parameters by option name (lambda, beta, ...)
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


# The registries' hyper-parameters ('section.field', Param, registry): the report shows and plots them by their
# option name (e.g. 'lambda'), beside the options every run has.
HYPERPARAMETERS = [(reg.key(p), p, reg) for reg in (TUNINGS, LOSSES, AVERAGERS) for p in reg.params()]
_NUMERIC_HPARAMS = ("lr", "steps", "batch_size", "accum_steps") + tuple(p.option for _, p, _ in HYPERPARAMETERS
                                                                        if p.numeric)


def _hparams(cfg: dict, results: dict) -> dict[str, Any]:
    """The options the report shows and plots: config.yaml, else what results.json says (a number that is
    not one, in an edited file, is left out rather than plotted)."""
    out = _hparams_raw(cfg, results)
    for k in _NUMERIC_HPARAMS:
        v = out.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            out[k] = None
    return out


def _hparams_raw(cfg: dict, results: dict) -> dict[str, Any]:
    f = moved_keys(flatten(cfg))
    backbone = results.get("backbone") if isinstance(results.get("backbone"), dict) else {}
    return {**{p.option: f.get(key) for key, p, _ in HYPERPARAMETERS}, "lr": f.get("optim.lr"),
            "steps": f.get("train.steps", results.get("steps")), "averaging": f.get("averaging.name"),
            "loss": f.get("loss.name"), "tuning": f.get("tuning.name", "image"),
            "arch": f.get("model.arch", backbone.get("arch")),
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


class DamagedRun(Exception):
    """A run folder whose records cannot be read as a run's: the report skips it, saying which and why."""


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedRun(f"{path} is unreadable ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(data, dict):
        raise DamagedRun(f"{path} is a JSON {type(data).__name__}, not an object")
    return data


_METRICS = ("accuracy", "base", "new", "H", "n")
_KINDS = ("train", "zeroshot", "wise-ft", "eval")


def _check_evals(evals: Any, where: str) -> None:
    """An evaluation: split name -> {role, domain, accuracy[, base, new, H]}, every metric a number (or null)."""
    if evals is None:
        return
    if not isinstance(evals, dict):
        raise DamagedRun(f"{where} is a {type(evals).__name__}, not a mapping of splits")
    for name, e in evals.items():
        if not isinstance(e, dict):
            raise DamagedRun(f"{where}[{name!r}] is a {type(e).__name__}, not an evaluation")
        for m in _METRICS:
            v = e.get(m)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise DamagedRun(f"{where}[{name!r}].{m} is {v!r}, not a number")
        if not isinstance(e.get("role", ""), (str, type(None))):
            raise DamagedRun(f"{where}[{name!r}].role is {e.get('role')!r}")


def _check_results(results: dict, path: Path) -> None:
    kind = results.get("kind", "train")
    if kind not in _KINDS:
        raise DamagedRun(f"{path}: 'kind' is {kind!r}, not one of {', '.join(_KINDS)}")
    for key in ("final", "zeroshot"):
        _check_evals(results.get(key), f"{path}: {key}")
    if kind == "wise-ft":
        alphas, variants = results.get("alphas", []), results.get("variants", {})
        if not isinstance(alphas, list) or not all(isinstance(a, (int, float)) for a in alphas) or \
                not isinstance(variants, dict):
            raise DamagedRun(f"{path}: 'alphas' or 'variants' is not what a WiSE-FT run writes")
        for key, evals in variants.items():
            _check_evals(evals, f"{path}: variants[{key!r}]")
    for key in ("holdout_domains", "domains", "train_domains"):
        v = results.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise DamagedRun(f"{path}: {key!r} is {v!r}, not a list of names")
    seed = results.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DamagedRun(f"{path}: 'seed' is {seed!r}, not an integer")


def _check_sidecar(side: dict, path: Path) -> None:
    for key, ok in (("method", lambda v: isinstance(v, str)), ("dataset", lambda v: isinstance(v, str)),
                    ("holdout", lambda v: isinstance(v, list)), ("seed", lambda v: isinstance(v, int)),
                    ("variant", lambda v: isinstance(v, dict)), ("base_to_new", lambda v: isinstance(v, bool))):
        if key not in side or not ok(side[key]):
            raise DamagedRun(f"{path}: {key!r} is {side.get(key)!r}")


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DamagedRun(f"{path} is unreadable ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (dict, type(None))) for v in data.values()):
        raise DamagedRun(f"{path} is not a run's config (a mapping of sections)")
    return data


def read_run(run_dir: Path) -> list[RunRecord]:
    """The records of one finished run directory (several for WiSE-FT: one per alpha); a damaged one raises
    DamagedRun saying which file and why (``collect`` skips it with a warning)."""
    results = _load(run_dir / "results.json")
    _check_results(results, run_dir / "results.json")
    side = _load(run_dir / "sweep.json") if (run_dir / "sweep.json").is_file() else None
    if side is not None:
        _check_sidecar(side, run_dir / "sweep.json")
    cfg_dict = _read_config(run_dir / "config.yaml")
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
            try:
                records.extend(read_run(Path(dirpath)))
            except DamagedRun as e:  # one damaged run does not stop the report of the others
                warn(f"report: skipping {dirpath}: {e}")
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


# ------------------------------------------------------------------ the number a run's table shows


METRIC = {"table1": "held-out accuracy (%)", "table2": "OOD avg accuracy (%)", "table3": "H of base and new (%)",
          "table4": "Total accuracy on the held-out domain (%)"}


def shown_kind(r: RunRecord) -> Optional[str]:
    """The table a run's numbers land in (layouts' rules); None for none."""
    if r.base_to_new:
        return "table3" if not r.holdout else ("table4" if len(r.holdout) == 1 else None)
    return "table1" if len(r.holdout) == 1 else "table2"


def _tests(evals: dict) -> list[dict]:
    es = [e for e in evals.values() if e.get("role") == "test"]
    return es or [e for e in evals.values() if e.get("role") == "val"]


def shown_value(r: RunRecord, evals: Optional[dict] = None) -> float:
    """That number (in [0, 1]) for the evaluation ``evals`` of run ``r`` (default: its final one); NaN if none."""
    evals = r.evals if evals is None else evals
    kind, es = shown_kind(r), _tests(evals or {})
    if kind in ("table1", "table4"):
        return mean(e.get("accuracy") for e in es)
    if kind == "table3":
        ids = [e for e in es if e.get("domain") in r.train_domains] or es
        return harmonic(mean(e.get("base") for e in ids), mean(e.get("new") for e in ids))
    if kind == "table2":
        tests = [e for e in evals.values() if e.get("role") == "test"]
        shifted = {e.get("domain") for e in tests if e.get("domain") not in r.train_domains}
        if shifted:
            return mean(mean(e.get("accuracy") for e in tests if e.get("domain") == d) for d in shifted)
        ids = {e.get("domain") for e in tests}
        if len(ids) == 1:
            return mean(e.get("accuracy") for e in tests)
        if not tests and es:  # 'ID (val)': the validation splits' mean is the table's only column
            return mean(e.get("accuracy") for e in es)
    return math.nan
