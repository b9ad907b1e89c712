"""Config fields that carry everything about an option: help, flag, choices, range, where it applies.

``opt`` makes a dataclass field whose metadata is the one source for the option's help text,
CLI flag, allowed values (``choices`` or a ``Range``), the commands that take it
(``scope``), the settings it applies under (``applies``), whether a run may resume with
another value (``runtime``: an option of how it runs, not of what it computes) and whether it
distinguishes a sweep's variants (``variant``).
The CLI, the YAML reader, validation, the docs tables and the sweep all read it from here.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import field
from typing import Any, Iterator, Optional

from ..errors import ConfigError
from ..registry import Range

__all__ = ["Range", "again", "check_value", "coerce", "default_of", "field_type", "flag_name", "iter_fields", "opt"]


def opt(default: Any, help: str, *, flag: Optional[str] = None, choices: Optional[tuple] = None,
        within: Optional[Range] = None, each: Optional[Range] = None, length: Optional[int] = None,
        scope: Optional[tuple] = None, applies: Optional[dict] = None, runtime: bool = False,
        variant: bool = False):
    """A config field: its default and help, and what the metadata keys above say about it."""
    meta = {"help": help, "runtime": runtime, "variant": variant}
    for key, value in (("flag", flag), ("choices", choices), ("within", within), ("each", each),
                       ("length", length), ("scope", scope), ("applies", applies)):
        if value is not None:
            meta[key] = tuple(value) if key == "choices" else value
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


def again(section: type, name: str, default: Any, help: str, **changes) -> dataclasses.Field:
    """The same option in another config tree with another default and help; its checks stay the same
    unless ``changes`` replaces one (e.g. a tighter ``within``)."""
    base = next(f for f in dataclasses.fields(section) if f.name == name)
    meta = {k: v for k, v in base.metadata.items() if k != "help"}
    meta.update(changes)
    return opt(default, help, **meta)


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def flag_name(section_field: dataclasses.Field) -> str:
    return section_field.metadata.get("flag", section_field.name.replace("_", "-"))


def iter_fields(cls) -> Iterator[tuple[str, type, dataclasses.Field]]:
    """Yield (section name, section class, field) for every option of a config tree (e.g. config.Config)."""
    for sec in dataclasses.fields(cls):
        sec_cls = sec.default_factory
        for f in dataclasses.fields(sec_cls):
            yield sec.name, sec_cls, f


def field_type(sec_cls, f: dataclasses.Field):
    """The runtime type of a field: (base type, optional?, is_list)."""
    tp = typing.get_type_hints(sec_cls)[f.name]
    optional = False
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if tp is list:
        return list, optional, True
    return tp, optional, False


def coerce(value: Any, sec_name: str, sec_cls, f: dataclasses.Field) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError naming the option."""
    tp, optional, is_list = field_type(sec_cls, f)
    where = f"--{flag_name(f)} ({sec_name}.{f.name})"
    if isinstance(value, str) and not value.strip():  # '--pretrained ""' is not 'none' (random weights) by accident
        raise ConfigError(f"{where}: the value is empty; give a value" + (" (or 'none')" if optional else ""))
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required")
    if is_list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = type(default_of(f)[0]) if default_of(f)[0:1] else str
        try:
            if any(isinstance(v, (list, tuple, dict, bool)) or v is None for v in value):
                raise TypeError  # [[a, b]] must not become the string "['a', 'b']"
            return [inner(v) for v in value]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a list of {inner.__name__}, got {value!r}") from None
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError  # YAML 'steps: 2.5' must not silently become 2
                return int(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def out_of_range(option: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"--{option}: {value!r} is out of range; allowed: {allowed}")


def check_value(f: dataclasses.Field, value: Any) -> None:
    """The checks the field's metadata declares (choices, range, list length and item range)."""
    m, flag = f.metadata, flag_name(f)
    if value is None:
        return  # the type check (coerce) already refused None where it is not allowed
    if "choices" in m and value not in m["choices"]:
        raise out_of_range(flag, value, ", ".join(m["choices"]))
    if "within" in m and not m["within"].contains(value):
        d = default_of(f)
        raise out_of_range(flag, value, m["within"].text(integer=isinstance(d, int) and not isinstance(d, bool)))
    if "length" in m and len(value) != m["length"]:
        raise out_of_range(flag, value, f"{m['length']} values" + (f", each {m['each'].text()}" if "each" in m
                                                                   else ""))
    if "each" in m and not all(m["each"].contains(v) for v in value):
        raise out_of_range(flag, value, f"each {m['each'].text()}")
