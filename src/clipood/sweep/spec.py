"""A sweep's spec: a YAML file (or ``clipood sweep`` flags) naming methods, datasets, held-out domains,
seeds, option overrides and a grid of variants. Every key is checked; one error line names it."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import DEFAULT_PROFILE, PROFILES, Config, flag_name, iter_fields, parse_yaml
from ..errors import ConfigError
from ..methods import DEFAULT_WISE_ALPHAS, get_method

__all__ = ["DATASET_KEYS", "DatasetSpec", "SPEC_KEYS", "SweepSpec", "check_spec", "load_spec", "nested", "option_key",
           "read_spec_file", "spec_from_dict", "spec_to_dict"]


@dataclass
class DatasetSpec:
    name: str
    root: Optional[str] = None
    holdout: Any = None  # None: the sweep's holdout
    overrides: dict = field(default_factory=dict)
    # per held-out domain ('a', or 'a+b' for several at once): options for its runs only, after ``overrides``
    # (e.g. a backbone aligned without that domain: the emoji leave-one-designer-out table)
    holdout_overrides: dict = field(default_factory=dict)


@dataclass
class SweepSpec:
    methods: list[str]
    datasets: list[DatasetSpec]
    holdout: Any = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    base_to_new: bool = False
    overrides: dict = field(default_factory=dict)
    method_overrides: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    wise_ft_alphas: list[float] = field(default_factory=lambda: list(DEFAULT_WISE_ALPHAS))
    wise_ft_base: str = "finetune"  # the training method whose runs WiSE-FT interpolates with zero-shot
    output_dir: str = "runs/sweep"
    name: str = "sweep"
    profile: str = DEFAULT_PROFILE  # a named set of option values under the overrides (--profile)


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(SweepSpec))  # the keys a spec file may have
DATASET_KEYS = ("dataset",) + tuple(f.name for f in dataclasses.fields(DatasetSpec))  # and a dataset entry


def option_key(key: str) -> str:
    """'section.field' for an option given as 'section.field' or as its flag name ('lambda')."""
    known = {f"{sec}.{f.name}": (sec, f) for sec, _, f in iter_fields(Config)}
    if key in known:
        return key
    by_flag = {flag_name(f): f"{sec}.{f.name}" for sec, _, f in iter_fields(Config)}
    name = key.lstrip("-")
    for candidate in (name, name.replace("_", "-")):
        if candidate in by_flag:
            return by_flag[candidate]
    raise ConfigError(f"sweep: unknown option {key!r}; use 'section.field' (e.g. loss.margin_lambda) or a flag "
                      f"name (e.g. lambda); see docs/configuration.md")


def nested(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        sec, name = option_key(key).split(".", 1)
        out.setdefault(sec, {})[name] = value
    return out


def _dataset(entry: Any, where: str) -> DatasetSpec:
    if isinstance(entry, str):
        return DatasetSpec(name=Path(entry).name or entry, root=entry)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a dataset is a root path or a mapping with keys {', '.join(DATASET_KEYS)}")
    unknown = set(entry) - set(DATASET_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in a dataset entry "
                          f"(known: {', '.join(DATASET_KEYS)})")
    overrides = copy.deepcopy(entry.get("overrides") or {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: a dataset's 'overrides' must be a mapping of config sections")
    if entry.get("dataset"):
        overrides.setdefault("data", {})["dataset"] = entry["dataset"]
    root = entry.get("root")
    name = entry.get("name") or entry.get("dataset") or (Path(root).name if root else None)
    if not name:
        raise ConfigError(f"{where}: a dataset entry needs a 'name', 'dataset' or 'root'")
    per_holdout = entry.get("holdout_overrides") or {}
    if not isinstance(per_holdout, dict) or not all(isinstance(v, dict) for v in per_holdout.values()):
        raise ConfigError(f"{where}: a dataset's 'holdout_overrides' maps a held-out domain to config sections, "
                          f"e.g. {{openmoji: {{model: {{pretrained: emoji-without-openmoji}}}}}}")
    return DatasetSpec(name=str(name), root=None if root is None else str(root), holdout=entry.get("holdout"),
                       overrides=overrides,
                       holdout_overrides={str(k): copy.deepcopy(v) for k, v in per_holdout.items()})


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: 'seeds' is a count or a list of integers")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: 'seeds: {value}' must be at least 1")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: 'seeds' lists a seed twice: {value}")
        return list(value)
    raise ConfigError(f"{where}: 'seeds' is a count or a list of integers, got {value!r}")


def spec_from_dict(data: dict, where: str = "sweep spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = set(data) - set(SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(SPEC_KEYS)})")
    methods = data.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list):
        datasets = [datasets]
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: 'grid' maps an option to a list of values, e.g. {{lambda: [0.1, 0.3]}}")
    grid = {option_key(k): (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    alphas = data.get("wise_ft_alphas", list(DEFAULT_WISE_ALPHAS))
    if not isinstance(alphas, list) or not alphas or not all(
            isinstance(a, (int, float)) and 0 <= a <= 1 for a in alphas):
        raise ConfigError(f"{where}: 'wise_ft_alphas' must be a list of numbers in [0, 1], got {alphas!r}")
    mo = data.get("method_overrides") or {}
    if not isinstance(mo, dict):
        raise ConfigError(f"{where}: 'method_overrides' maps a method name to config sections")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: 'overrides' must be a mapping of config sections")
    profile = data.get("profile", DEFAULT_PROFILE)
    if profile not in PROFILES:
        raise ConfigError(f"{where}: unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    spec = SweepSpec(methods=[str(m) for m in methods], datasets=[_dataset(d, where) for d in datasets],
                     holdout=data.get("holdout", "all"), seeds=_seeds(data.get("seeds", [0]), where),
                     base_to_new=bool(data.get("base_to_new", False)), overrides=overrides,
                     method_overrides=mo, grid=grid, wise_ft_alphas=[float(a) for a in alphas],
                     wise_ft_base=str(data.get("wise_ft_base", "finetune")),
                     output_dir=os.path.expanduser(str(data.get("output_dir", "runs/sweep"))),  # as its runs' records
                     name=str(data.get("name", "sweep")), profile=profile)
    for m in list(spec.methods) + list(mo):
        get_method(m)
    base = get_method(spec.wise_ft_base)
    if not base.scores_by_class_texts:
        raise ConfigError(f"{where}: 'wise_ft_base' must be a training method with the class-text head (e.g. "
                          f"finetune, clipood, flyp), got {spec.wise_ft_base!r}")
    return spec


def read_spec_file(path: str | Path) -> Any:
    """The parsed YAML of a spec file, or one ConfigError line naming the file."""
    return parse_yaml(path, flag="sweep")


def load_spec(path: str | Path) -> SweepSpec:
    return spec_from_dict(read_spec_file(path), str(path))


def check_spec(spec: SweepSpec) -> None:
    if not spec.methods:
        raise ConfigError("sweep: no methods; pass --method NAME or list 'methods:' in the spec")
    if not spec.datasets:
        raise ConfigError("sweep: no datasets; pass --dataset [NAME=]ROOT or list 'datasets:' in the spec")
    names = [d.name for d in spec.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep: two datasets are named the same ({names}); give each a distinct 'name'")



def spec_to_dict(spec: SweepSpec) -> dict:
    d = dataclasses.asdict(spec)
    d["datasets"] = [{k: v for k, v in ds.items() if v not in (None, {})} for ds in d["datasets"]]
    return d


