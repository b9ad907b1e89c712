"""A sweep's runs: methods x datasets x held-out domains x variants x seeds, each a named run folder.

``plan`` expands a spec into the deterministic list of runs (``variants`` yields a method's
distinct variants: grid points that differ only in options the method does not use are one
run); ``config_differences`` says whether a run folder was made with the same options.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from ..config import (
    Config,
    apply_profile,
    flag_name,
    flatten,
    from_dict,
    irrelevant_keys,
    iter_fields,
    load_yaml,
    runtime_keys,
    to_dict,
    validate,
    with_absolute_paths,
)
from ..data.datasets import splits_by_domain
from ..errors import ConfigError
from ..methods import WISE_FT, ZEROSHOT, Method, get_method, method_label, wise_ft_key
from .spec import SweepSpec, check_spec, nested

__all__ = ["PlannedRun", "config_differences", "plan", "plan_table", "run_name", "variants"]

SIDECAR = "sweep.json"  # in each run directory: what the run is within its sweep (for reports)
RUNTIME_KEYS = runtime_keys()  # options a run may resume with other values of
ZEROSHOT_SECTIONS = ("model", "data", "eval")  # the only sections that change a zero-shot evaluation


@dataclass
class PlannedRun:
    name: str
    method: Method
    dataset: str
    holdout: tuple[str, ...]
    seed: int
    variant: dict[str, Any]  # 'section.field' -> value, the options that make this run a variant
    cfg: Config
    base: Optional[str] = None  # wise-ft: the run it interpolates
    alphas: tuple[float, ...] = ()

    @property
    def path(self) -> Path:
        return Path(self.cfg.run.output_dir) / self.name

    def status(self) -> str:
        if (self.path / "results.json").is_file():
            return "finished"
        if (self.path / "config.yaml").is_file():
            return "unfinished"
        return "new"

    def sidecar(self, sweep: str) -> dict:
        method = wise_ft_key(self.method.base) if self.method.kind == WISE_FT else self.method.name
        return {"sweep": sweep, "method": method, "dataset": self.dataset, "holdout": list(self.holdout),
                "seed": self.seed, "variant": self.variant, "base_to_new": self.cfg.data.base_to_new,
                "base_run": self.base}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", str(text)).strip("_") or "x"


def _short(key: str) -> str:
    sec, name = key.split(".", 1)
    for s, _, f in iter_fields(Config):
        if s == sec and f.name == name:
            return flag_name(f)
    return name


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "_".join(map(_fmt_value, v))
    return str(v)


def run_name(dataset: str, method: str, holdout: tuple[str, ...], b2n: bool, variant: dict, seed: int) -> str:
    held = "+".join(holdout) if holdout else "noholdout"
    var = "".join(f"-{_short(k)}{_fmt_value(v)}" for k, v in sorted(variant.items()))
    return slug(f"{dataset}-{method}-{held}{'-b2n' if b2n else ''}{var}-seed{seed}")


def _get(cfg: Config, key: str) -> Any:
    sec, name = key.split(".", 1)
    return getattr(getattr(cfg, sec), name)


def _domains(cfg: Config) -> list[str]:
    """The dataset's domains (to expand 'holdout: all'), from the registry or by scanning the folder."""
    from ..training.experiment import prepare_data
    probe = copy.deepcopy(cfg)
    probe.data.holdout_domains, probe.data.base_to_new = [], False
    index, _ = prepare_data(validate(probe, training=False), training=False)
    return list(index.domains)


def _holdouts(value: Any, cfg: Config, dataset: str) -> list[tuple[str, ...]]:
    if value is None or value == [] or (isinstance(value, str) and value.lower() == "none"):
        return [()]
    if isinstance(value, str) and value.lower() == "all":
        domains = _domains(cfg)
        if len(domains) < 2:
            raise ConfigError(f"sweep: dataset {dataset!r} has one domain ({domains[0]}); 'holdout: all' needs "
                              f"several; use 'holdout: none'")
        return [(d,) for d in domains]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"sweep: 'holdout' of {dataset!r} must be all, none, or a list of domains, got {value!r}")
    out = []
    for item in value:
        out.append(tuple(str(d) for d in item) if isinstance(item, list) else (str(item),))
    domains = _domains(cfg)
    for held in out:
        for d in held:
            if d not in domains:
                raise ConfigError(f"sweep: holdout '{d}' is not a domain of dataset {dataset!r}; domains: "
                                  f"{', '.join(domains)}")
    return out


def method_for(spec: SweepSpec, name: str) -> Method:
    """The registered method; WiSE-FT with the spec's base method (``wise_ft_base``)."""
    m = get_method(name)
    if m.kind == WISE_FT and spec.wise_ft_base != m.base:
        get_method(spec.wise_ft_base)  # a known method
        m = dataclasses.replace(m, base=spec.wise_ft_base, label=method_label(wise_ft_key(spec.wise_ft_base)))
    return m


def _with_method_deps(spec: SweepSpec, methods: list[str]) -> list[Method]:
    """Requested methods in order, with the runs they build on (WiSE-FT's fine-tuned run) before them."""
    order: list[Method] = []
    for name in methods:
        m = method_for(spec, name)
        if m.base and m.base not in [o.name for o in order]:
            order.append(get_method(m.base))
        if m.name not in [o.name for o in order]:
            order.append(m)
    return order


def _dataset_config(spec: SweepSpec, ds) -> Config:
    """The sweep's overrides, then the dataset's own, over the sweep's profile over the defaults."""
    where = {"data": {"base_to_new": spec.base_to_new, **({"root": ds.root} if ds.root is not None else {})}}
    return apply_profile(spec.profile, [(spec.overrides, "sweep overrides"), (where, f"sweep dataset {ds.name}"),
                                        (ds.overrides, f"sweep dataset {ds.name}")],
                         lambda c: splits_by_domain(c.data.dataset))


def variants(spec: SweepSpec, method: Method, cfg_m: Config) -> Iterator[tuple[dict, Config]]:
    """The method's distinct variants of the grid: (options that vary, config). Grid points that differ
    only in options the method does not use (lambda without a margin, any 'train' option for zero-shot)
    are one variant."""
    keys = sorted(spec.grid)
    seen: list[dict] = []
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        combo = dict(zip(keys, values))
        if method.kind == ZEROSHOT:
            keep = {k: v for k, v in combo.items() if k.split(".")[0] in ZEROSHOT_SECTIONS}
        else:
            ignored = irrelevant_keys(from_dict(nested(combo), copy.deepcopy(cfg_m), source="sweep grid"))
            keep = {k: v for k, v in combo.items() if k not in ignored}
        if keep not in seen:
            seen.append(keep)
            yield keep, from_dict(nested(keep), copy.deepcopy(cfg_m), source="sweep grid")


def _cells(spec: SweepSpec) -> Iterator[tuple]:
    """(dataset, held-out domains, method, variant, config, seed) for every run, in execution order."""
    methods = _with_method_deps(spec, spec.methods)
    for ds in spec.datasets:
        base_ds = _dataset_config(spec, ds)
        holdouts = _holdouts(spec.holdout if ds.holdout is None else ds.holdout, base_ds, ds.name)
        stray = sorted(set(ds.holdout_overrides) - {"+".join(h) for h in holdouts})
        if stray:
            raise ConfigError(f"sweep: dataset {ds.name!r}: holdout_overrides names {', '.join(stray)}, which it does "
                              f"not hold out; held out: {', '.join('+'.join(h) for h in holdouts) or 'none'}")
        for held in holdouts:
            base = from_dict(copy.deepcopy(ds.holdout_overrides.get("+".join(held), {})), copy.deepcopy(base_ds),
                             source=f"sweep dataset {ds.name} holdout_overrides.{'+'.join(held)}")
            for method in methods:
                cfg_m = from_dict(copy.deepcopy(spec.method_overrides.get(method.name, {})), method.configure(base),
                                  source=f"sweep method_overrides.{method.name}")
                for variant, cfg_v in variants(spec, method, cfg_m):
                    for seed in spec.seeds[:1] if method.kind == ZEROSHOT else spec.seeds:
                        yield ds, held, method, variant, cfg_v, seed


def plan(spec: SweepSpec) -> list[PlannedRun]:
    """Every run of the sweep, in execution order (a WiSE-FT run after the run it reads)."""
    check_spec(spec)
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    for ds, held, method, variant, cfg_v, seed in _cells(spec):
        name = run_name(ds.name, method.name, held, cfg_v.data.base_to_new, variant, seed)
        if name in seen:
            continue
        seen.add(name)
        cfg = copy.deepcopy(cfg_v)
        cfg.data.holdout_domains, cfg.train.seed = list(held), seed
        cfg.run.output_dir, cfg.run.name = spec.output_dir, name
        validate(cfg, training=method.kind != ZEROSHOT)
        wise = method.kind == WISE_FT
        base_run = run_name(ds.name, method.base, held, cfg.data.base_to_new, variant, seed) if wise else None
        runs.append(PlannedRun(name, method, ds.name, held, seed, variant, cfg, base_run,
                               tuple(spec.wise_ft_alphas) if wise else ()))
    return runs



def config_differences(planned: Config, saved: Config) -> list[str]:
    """Options (other than runtime ones: how a run runs) whose saved value differs from the planned one."""
    a, b = flatten(to_dict(with_absolute_paths(planned))), flatten(to_dict(with_absolute_paths(saved)))  # as saved
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RUNTIME_KEYS:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, float) and isinstance(vb, (int, float)) and math.isclose(va, vb, rel_tol=1e-12):
            continue
        if va != vb:
            diffs.append(f"{key} (run: {vb!r}, sweep: {va!r})")
    return diffs


def check_same(run: PlannedRun) -> None:
    saved = load_yaml(run.path / "config.yaml")
    if run.method.kind == WISE_FT:
        return  # its config is the fine-tuned run's, checked there
    diffs = config_differences(run.cfg, saved)
    if diffs:
        raise ConfigError(f"sweep: {run.path} was made with other options ({'; '.join(diffs[:3])}); delete it or "
                          f"use another output_dir")



def plan_table(runs: list[PlannedRun]) -> str:
    from ..reporting.text import markdown_table
    return markdown_table(["run", "method", "dataset", "held out", "seed", "status"],
                          [[r.name, r.method.name, r.dataset, "+".join(r.holdout) or "-", r.seed, r.status()]
                           for r in runs])


