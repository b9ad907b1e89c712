"""Registries whose entries declare their own parameters: the losses, the averagers, the methods.

An entry is a name, a help line and the hyper-parameters it reads, each a ``Param`` (its key in
the config section, default, range or choices, help, flag). The config tree makes a registry's
section from its entries (``config.tree``): the choices of ``--loss`` / ``--averaging`` and their
help, one option per parameter with the entries it applies to, so that ``--help``,
docs/configuration.md, validation, the sweep's variants (``config.variant_keys``,
``config.irrelevant_keys``) and the report's settings and plots all follow from the entries. A new
loss or averager with a new parameter is one entry.

A parameter that several entries read (lambda: MMS, the fixed margin, focal MMS) is one ``Param``
object declared by each of them; two different declarations under one name are refused.
This module sits below everything (no clipood imports but errors), so that the registries and the
config tree can both use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, Iterator, Mapping, Optional, TypeVar

from .errors import ConfigError

__all__ = ["Entry", "Param", "Range", "Registry"]


@dataclass(frozen=True)
class Range:
    """lo <= x <= hi (or < with the open flags); None is unbounded. ``name`` is x in messages."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    name: str = "x"
    note: str = ""

    def contains(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def text(self, integer: bool = False) -> str:
        lo, hi = _number(self.lo), _number(self.hi)
        lo_op, hi_op = ("<" if self.lo_open else "<="), ("<" if self.hi_open else "<=")
        name = "an integer" if integer and self.name == "x" else self.name
        if self.lo is not None and self.hi is not None:
            core = f"{name} from {lo} to {hi}" if integer and self.name == "x" else f"{lo} {lo_op} {name} {hi_op} {hi}"
        elif self.lo is not None:
            core = f"{name} {'>' if self.lo_open else '>='} {lo}"
        else:
            core = f"{name} {hi_op} {hi}"
        return core + (f" ({self.note})" if self.note else "")


def _number(v: Any) -> str:
    """A bound as written: integers in full (2**63 - 1, not 9.22337e+18), other numbers short (1e-05)."""
    return "" if v is None else str(v) if isinstance(v, int) else f"{v:g}"


@dataclass(frozen=True)
class Param:
    """A hyper-parameter an entry reads: the option ``--FLAG`` and the key ``SECTION.name`` of its registry's
    section. ``variant``: two values are two variants of a method (a sweep's grid, the report's settings and
    plots); ``label``: what a plot's axis calls it."""

    name: str
    default: Any
    help: str
    flag: Optional[str] = None
    within: Optional[Range] = None
    choices: Optional[tuple] = None
    variant: bool = True
    label: str = ""

    @property
    def option(self) -> str:
        """The flag name without dashes, e.g. 'lambda' (also the report's name for it)."""
        return self.flag or self.name.replace("_", "-")

    @property
    def numeric(self) -> bool:
        return isinstance(self.default, (int, float)) and not isinstance(self.default, bool)


@dataclass(frozen=True)
class Entry:
    """A named entry of a registry and the parameters it reads."""

    name: str
    help: str
    params: tuple[Param, ...] = ()

    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """Entries by name, in the order they were added (the order --help and the docs list them).

    ``section``: the config section the entries' parameters live in (``loss``, ``averaging``);
    ``option``: the flag that names an entry (``--loss``)."""

    def __init__(self, what: str, section: str, option: str):
        self.what, self.section, self.option = what, section, option
        self._entries: dict[str, E] = {}
        self._params: dict[str, Param] = {}

    def add(self, entry: E) -> E:
        if entry.name in self._entries:
            raise ValueError(f"{self.what} {entry.name!r} is registered twice")
        for p in entry.params:
            known = self._params.get(p.name)
            if known is not None and known != p:  # one name, one meaning
                raise ValueError(f"{self.what} {entry.name!r}: parameter {p.name!r} differs from the one of that "
                                 f"name other {self.what}es declare; declare it once and share it")
            self._params.setdefault(p.name, p)
        self._entries[entry.name] = entry
        return entry

    def __getitem__(self, name: str) -> E:
        if name not in self._entries:
            raise ConfigError(f"{self.option}: unknown {self.what} {name!r}; known: {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[E]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, E]]:
        return list(self._entries.items())

    def params(self) -> list[Param]:
        """Every parameter of the entries, each once, in the order they are first declared."""
        return list(self._params.values())

    def users(self, param: str) -> tuple[str, ...]:
        """The entries that read parameter ``param``."""
        return tuple(n for n, e in self._entries.items() if param in e.param_names())

    def key(self, param: Param) -> str:
        """'section.name' of a parameter, as config files and sweeps name it."""
        return f"{self.section}.{param.name}"

    def arguments(self, name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters entry ``name`` reads: the given values, its defaults for the others; a value for a
        parameter it does not read is an error, not ignored."""
        entry = self[name]
        unknown = sorted(set(given) - set(entry.param_names()))
        if unknown:
            takes = ", ".join(entry.param_names()) or "none"
            raise ConfigError(f"{self.option} {name}: takes no parameter {', '.join(map(repr, unknown))} (its "
                              f"parameters: {takes})")
        return {p.name: given.get(p.name, p.default) for p in entry.params}

    def section_arguments(self, section: Any) -> dict[str, Any]:
        """The parameters the entry named by a config section (``section.name``) reads, from that section."""
        return {p.name: getattr(section, p.name) for p in self[section.name].params}

    def help(self) -> str:
        return "; ".join(f"'{n}': {e.help}" for n, e in self._entries.items())
