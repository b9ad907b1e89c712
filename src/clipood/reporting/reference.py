"""The paper's published numbers (package data), and matching them to a user's names."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Optional

import yaml

from .stats import Stat

__all__ = ["REFERENCE_FILE", "cell", "citation", "key", "load_reference", "match", "settings", "short"]

REFERENCE_FILE = "clipood_icml2023.yaml"


@functools.lru_cache(maxsize=1)
def load_reference() -> dict:
    """Tables 1-4 of the CLIPood paper as data (see the YAML file for the source)."""
    text = resources.files("clipood.reporting").joinpath("published", REFERENCE_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def key(name: str) -> str:
    """Names compare without case, spaces, '-' or '_' ('Real World' = real_world)."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def match(name: str, aliases: dict[str, list[str]]) -> Optional[str]:
    """The reference column whose name or aliases equal ``name`` (as keys), else None."""
    k = key(name)
    for col, names in aliases.items():
        if k == key(col) or k in {key(a) for a in names or []}:
            return col
    return None


def cell(value: Any) -> Optional[Stat]:
    """A published value: a number (mean) or [mean, std]; a std is over the paper's runs (n),
    so that its standard error can be shown beside ours."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        std = float(value[1]) if len(value) > 1 else None
        return Stat(float(value[0]), std, int(load_reference()["source"]["runs"]) if std is not None else None)
    return Stat(float(value), None, None)


def citation() -> str:
    s = load_reference()["source"]
    return f"{s['authors']}, \"{s['title']}\", {s['venue']} ({s['backbone']})"


def short() -> str:
    return load_reference()["source"]["short"]


def settings() -> str:
    """The paper's training settings, shown beside the runs' own."""
    return load_reference()["source"]["settings"]
