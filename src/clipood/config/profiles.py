"""Profiles: named sets of option values, applied under a config file and flags (``--profile``).

clipood's defaults (profile ``clipood``) keep what it does better than the paper's official
code (fp32 master weights and average, bicubic resizing, a gradient-norm guard, a new few-shot
subset per seed, DomainBed's reported split). ``official`` sets every choice where the two
differ as the official code (thuml/CLIPood) makes it, so the paper's numbers come from one
command; each of its values is an ordinary option with its own help, so any of them can be
changed back by a flag (docs/method.md, "clipood and the official code", measures each).

The official code reads domain-split data (DomainBed's datasets, a folder of domains) and
datasets with their own splits (CoOp's, ImageNet) in two ways, so a profile may set some
options only for domain-split data; the caller says which the data is (the dataset registry,
``data.datasets.splits_by_domain``, sits above this layer).

Order: dataclass defaults < profile < ``--config`` YAML < flags.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError
from .io import flatten, from_dict

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "apply_profile", "profile_of", "profile_values"]


@dataclass(frozen=True)
class Profile:
    about: str
    values: dict = field(default_factory=dict)          # every kind of data
    domain_split: dict = field(default_factory=dict)    # DomainBed's datasets and folders only


PROFILES: dict[str, Profile] = {
    "clipood": Profile("clipood's defaults (each documented where it differs from the official code)"),
    "official": Profile(
        "every choice as the paper's official code makes it: fp16 weight storage and fp16 average, bilinear "
        "resizing, no gradient clipping, one few-shot subset (seed 0) for every seed; for domain-split data also "
        "DomainBed's split and the official test sets and scoring, images drawn with replacement",
        values={"model": {"interpolation": "bilinear"}, "optim": {"grad_clip": None},
                "train": {"master_weights": "fp16"}, "averaging": {"precision": "fp16"},
                "data": {"shot_seed": 0}},
        domain_split={"data": {"protocol": "official"}, "train": {"sampling": "replacement"}},
    ),
}
DEFAULT_PROFILE = "clipood"


def profile_values(name: str, domain_split: bool) -> dict:
    """The nested option values profile ``name`` sets, for domain-split data or not."""
    if name not in PROFILES:
        raise ConfigError(f"--profile: unknown profile {name!r}; known: {', '.join(PROFILES)}")
    p = PROFILES[name]
    out = copy.deepcopy(p.values)
    if domain_split:
        for sec, values in p.domain_split.items():
            out.setdefault(sec, {}).update(values)
    return out


def apply_profile(name: str, layers: list[tuple[dict, str]], splits_by_domain: Callable[[Any], bool], base=None):
    """The config of ``layers`` ((nested dict, source) in order, e.g. the YAML file then the flags) over profile
    ``name`` over ``base`` (the defaults). The profile's values depend on the data, which the layers choose;
    ``splits_by_domain(cfg)`` says whether it is domain-split."""
    from .tree import Config
    cfg = copy.deepcopy(base) if base is not None else Config()
    probe = copy.deepcopy(cfg)
    for data, source in layers:
        probe = from_dict(copy.deepcopy(data), probe, source=source)
    cfg = from_dict(profile_values(name, splits_by_domain(probe)), cfg, source=f"--profile {name}")
    for data, source in layers:
        cfg = from_dict(copy.deepcopy(data), cfg, source=source)
    return cfg


def profile_of(cfg, domain_split: bool) -> dict[str, Any]:
    """Which profile a config runs: {'name': ..., 'changed': {option: value}}, the profile whose values it
    differs from least (its defaults count for the options a profile leaves alone)."""
    from .tree import Config
    defaults = flatten(dataclasses.asdict(Config()))
    now = flatten(dataclasses.asdict(cfg))
    keys = sorted({k for n in PROFILES for k in flatten(profile_values(n, domain_split))})
    best = None
    for name in PROFILES:
        want = {**{k: defaults[k] for k in keys}, **flatten(profile_values(name, domain_split))}
        changed = {k: now[k] for k in keys if k in want and now[k] != want[k]}
        if best is None or len(changed) < len(best["changed"]):
            best = {"name": name, "changed": changed}
    return best
