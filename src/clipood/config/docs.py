"""docs/configuration.md (and the pretraining one), generated from the field metadata."""

from __future__ import annotations

import dataclasses
from typing import Optional

from .fields import default_of, flag_name, iter_fields
from .tree import Config

__all__ = ["allowed", "applies", "options_markdown"]


def allowed(f: dataclasses.Field) -> str:
    """' Allowed: ...' from the field's choices or range (the checks validation makes)."""
    m = f.metadata
    if "choices" in m:
        return f" Allowed: {', '.join(m['choices'])}."
    if "within" in m:
        d = default_of(f)
        return f" Allowed: {m['within'].text(integer=isinstance(d, int) and not isinstance(d, bool))}."
    if "each" in m:
        return f" Allowed: {m.get('length', 'several')} values, each {m['each'].text()}."
    return ""


def applies(f: dataclasses.Field, cls=Config) -> str:
    """' Applies with --loss mms, fixed_margin.' from the field's ``applies`` (what ``irrelevant_keys`` reads)."""
    parts = []
    for key, values in (f.metadata.get("applies") or {}).items():
        sec, name = key.split(".", 1)
        flag = next(flag_name(g) for s, _, g in iter_fields(cls) if s == sec and g.name == name)
        parts.append(f"--{flag} {', '.join(map(str, values))}")
    return f" Applies with {'; '.join(parts)}." if parts else ""


def options_markdown(cls=Config, header: Optional[list[str]] = None) -> str:
    """docs/configuration.md: every option, its flag, default and help (regenerate, never edit)."""
    lines = header or ["# Configuration reference", "",
                       "Generated from `src/clipood/config/` by `python -m clipood.config > docs/configuration.md`; "
                       "a test keeps it in sync. YAML files use the section and key names; the CLI uses the flags. "
                       "Defaults marked 'Paper:' come from the official CLIPood implementation.", ""]
    current = None
    for sec, sec_cls, f in iter_fields(cls):
        if sec != current:
            lines += ["", f"## `{sec}`", "", "| YAML key | flag | default | meaning |", "|---|---|---|---|"]
            current = sec
        default = default_of(f)
        text = (f.metadata["help"] + applies(f, cls) + allowed(f)).replace("|", "\\|")
        lines.append(f"| `{sec}.{f.name}` | `--{flag_name(f)}` | `{default!r}` | {text} |")
    return "\n".join(lines) + "\n"


