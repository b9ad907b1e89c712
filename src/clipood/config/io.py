"""Reading and writing config trees: nested dicts and YAML (duplicate keys refused), what a user set,
absolute paths for a run's ``config.yaml``, and the keys that derive from field metadata."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError
from ..templates import is_template_file
from .fields import coerce, flag_name, iter_fields
from .tree import Config

__all__ = ["PATH_KEYS", "changed_options", "config_record", "expand_home", "flatten", "from_dict", "given_keys",
           "irrelevant_keys", "load_yaml", "parse_yaml", "runtime_keys", "save_yaml", "to_dict", "variant_keys",
           "with_absolute_paths"]


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def flatten(d: Optional[dict], prefix: str = "") -> dict[str, Any]:
    """{'loss': {'name': 'mms'}} -> {'loss.name': 'mms'}."""
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Options that moved to another section: 'old section.field' -> 'new section.field'. Config files, run folders
# and checkpoint records written before the move are read with the option in its new place.
MOVED = {"loss.head_init": "model.head_init", "train.device": "compute.device", "train.precision": "compute.precision",
         "train.channels_last": "compute.channels_last"}


def moved(data: dict, cfg, source: str = "config") -> dict:
    """A nested dict with the options of MOVED in their new sections (where ``cfg``'s tree has them), said in a
    note naming ``source``."""
    sections = {f.name for f in dataclasses.fields(cfg)}
    out = {sec: dict(values) if isinstance(values, dict) else values for sec, values in data.items()}
    read = []
    for old, new in MOVED.items():
        (os_, ok), (ns, nk) = old.split("."), new.split(".")
        values = out.get(os_)
        if ns in sections and isinstance(values, dict) and ok in values:
            target = out.setdefault(ns, {})
            if isinstance(target, dict) and nk not in target:
                target[nk] = values.pop(ok)
                read.append(f"{old} as {new}")
    if read:
        from ..console import note
        note(f"{source}: read {', '.join(read)} (options that moved section; write them there)")
    return out


def moved_keys(options: dict) -> dict:
    """Flat 'section.field' keys of MOVED renamed to their new place (a config record of an older run)."""
    return {MOVED.get(k, k): v for k, v in options.items()}


def from_dict(data: dict, base: Optional[Config] = None, source: str = "config") -> Config:
    """Merge a nested dict (as in a YAML file) over ``base``; unknown keys are errors."""
    cfg = base if base is not None else Config()
    sections = [f.name for f in dataclasses.fields(cfg)]  # any config tree (Config, PretrainConfig)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections {sections}, got {type(data).__name__}")
    data = moved(data, cfg, source)
    for sec_name, values in data.items():
        if sec_name not in sections:
            raise ConfigError(f"{source}: unknown section {sec_name!r} (known: {', '.join(sections)})")
        section = getattr(cfg, sec_name)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {sec_name!r} must be a mapping, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown option {sec_name}.{key!r} (known: {', '.join(fields)})"
                )
            setattr(section, key, coerce(value, sec_name, type(section), fields[key]))
    return cfg


MERGE_TAG = "tag:yaml.org,2002:merge"
# Bounds on a YAML file, checked before it is built into objects: a config is a few hundred values.
MAX_YAML_BYTES = 1 << 20      # 1 MiB
MAX_YAML_DEPTH = 64           # nested mappings and lists
MAX_YAML_VALUES = 100_000     # values once every alias is expanded (a 'billion laughs' expands to 10**9)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not 'last wins').
    Merge keys ('<<: *defaults') merge as YAML says: a key written in the mapping overrides a merged one."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # flatten_mapping (in the base class) merges it
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _check_yaml_size(text: str, path: Path, flag: str) -> None:
    """Refuse, from PyYAML's event stream (no objects built), nesting deeper than MAX_YAML_DEPTH and aliases
    that expand to more than MAX_YAML_VALUES values: both would take the memory or the stack of the process."""
    sizes: dict[str, int] = {}       # anchor -> values its node expands to
    stack: list[list] = []            # open collections: [values so far, anchor]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) > MAX_YAML_DEPTH:
                raise ConfigError(f"{flag}: {path} nests mappings or lists more than {MAX_YAML_DEPTH} deep; a config "
                                  f"is a few levels deep")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            n, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            n, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            n, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = n
        if stack:
            stack[-1][0] += n
        else:
            total += n
        if (stack[-1][0] if stack else total) > MAX_YAML_VALUES:
            raise ConfigError(f"{flag}: {path} holds more than {MAX_YAML_VALUES:,} values once its aliases (*name) "
                              f"are expanded; a config has a few hundred")


def parse_yaml(path: str | Path, flag: str = "--config") -> Any:
    """A YAML file's data, or one ConfigError line: missing, unreadable, invalid, with a duplicate key, or past
    the bounds of a config (MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag}: file not found: {path}")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{flag}: {path} is {size / 2**20:.1f} MiB; a config is at most "
                              f"{MAX_YAML_BYTES // 2**20} MiB of YAML (is it the right file?)")
        text = path.read_text(encoding="utf-8-sig")
        _check_yaml_size(text, path, flag)
        return yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        msg = " ".join(str(e).split()) if str(e) else type(e).__name__
        raise ConfigError(f"{flag}: {path} is not valid YAML: {msg}") from None
    except OSError as e:
        raise ConfigError(f"{flag}: {path}: cannot be read ({e.strerror})") from None


def given_keys(data: Any) -> set[str]:
    """'section.field' for every option a YAML mapping sets (to tell what the user chose from defaults)."""
    if not isinstance(data, dict):
        return set()
    return {f"{sec}.{key}" for sec, values in data.items() if isinstance(values, dict) for key in values}


def load_yaml(path: str | Path, base: Optional[Config] = None) -> Config:
    path = Path(path)
    return from_dict(parse_yaml(path), base, source=str(path))


def save_yaml(cfg, path: str | Path, notes: Optional[dict[str, str]] = None) -> None:
    """Write the config; ``notes`` ('section.field' -> text) become comments on their lines, e.g. what an
    'auto' value resolved to (a comment, so reading the file back gives the config as it was given)."""
    from ..io import write_text
    lines = yaml.safe_dump(to_dict(cfg), sort_keys=False).splitlines()
    section = ""
    for i, line in enumerate(lines):
        if not line.startswith(" "):
            section = line.split(":", 1)[0]
        elif notes and line.startswith("  ") and not line.startswith("   ") and ":" in line:
            text = notes.get(f"{section}.{line.strip().split(':', 1)[0]}")
            if text:
                lines[i] = f"{line}  # {text}"
    write_text(path, "\n".join(lines) + "\n")


PATH_KEYS = (("data", "root"), ("data", "class_names"), ("data", "csv"), ("run", "output_dir"), ("model", "cache_dir"))


def _absolute(path: Optional[str]) -> Optional[str]:
    return None if path is None else str(Path(path).expanduser().absolute())


def _map_paths(cfg, fn):
    """``fn`` applied, in place, to every option of a config tree that names a path: the folders and files
    of PATH_KEYS, a ``local-dir:`` folder, a weights file and files of templates."""
    m = cfg.model
    if m.arch.startswith("local-dir:"):
        m.arch = "local-dir:" + fn(m.arch[len("local-dir:"):])
    if m.pretrained and os.path.exists(os.path.expanduser(m.pretrained)):  # a weights file or model folder
        m.pretrained = fn(m.pretrained)
    if getattr(m, "templates", None):  # a file of templates; presets and templates stay as they are
        m.templates = [fn(t) if is_template_file(t) else t for t in m.templates]
    for section, key in PATH_KEYS:
        sec = getattr(cfg, section, None)
        if sec is not None and hasattr(sec, key) and getattr(sec, key) is not None:
            setattr(sec, key, fn(getattr(sec, key)))
    return cfg


def expand_home(cfg):
    """'~' and '~user' in every path option expanded, in place, as a shell would have done (a quoted
    '--output-dir ~/runs' must not make a folder named '~' while config.yaml records $HOME/runs)."""
    return _map_paths(cfg, os.path.expanduser)


def with_absolute_paths(cfg):
    """A copy of a config tree with every path absolute, so a run resumes from any working directory."""
    return _map_paths(copy.deepcopy(cfg), _absolute)


def runtime_keys(cls=Config) -> set[str]:
    """'section.field' of the options that change how a run executes, not what it computes."""
    return {f"{sec}.{f.name}" for sec, _, f in iter_fields(cls) if f.metadata.get("runtime")}


def config_record(cfg) -> dict:
    """The options that decide what a run computes (all but those of how it runs), paths absolute, and
    their SHA-256: what a run and its checkpoints keep of the config they were made with."""
    skip = runtime_keys(type(cfg))
    options = {k: v for k, v in sorted(flatten(to_dict(with_absolute_paths(cfg))).items()) if k not in skip}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=repr).encode()).hexdigest()
    return {"options": options, "sha256": digest}


def changed_options(saved: dict, cfg) -> list[str]:
    """'section.field' of every option whose value differs between a config record and ``cfg``."""
    before, after, missing = moved_keys(saved.get("options") or {}), config_record(cfg)["options"], object()
    return [k for k in sorted(set(before) | set(after)) if before.get(k, missing) != after.get(k, missing)]


def variant_keys(cls=Config) -> tuple[str, ...]:
    """'section.field' of the hyper-parameters that make two runs of a method different variants."""
    return tuple(f"{sec}.{f.name}" for sec, _, f in iter_fields(cls) if f.metadata.get("variant"))


def irrelevant_keys(cfg) -> dict[str, str]:
    """Options ('section.field') this configuration does not use, each with the reason (field ``applies``).

    A sweep's grid over, e.g., lambda needs only one run of a method that has no margin; the
    CLI warns when one of them is given. A tree may add options no field's ``applies`` can say
    (``unused_options()``: pretraining's augmentations when its features are cached)."""
    out = dict(cfg.unused_options()) if hasattr(cfg, "unused_options") else {}
    for sec, _, f in iter_fields(type(cfg)):
        for key, allowed in (f.metadata.get("applies") or {}).items():
            s, name = key.split(".", 1)
            value = getattr(getattr(cfg, s), name)
            if value not in allowed:
                flag = "--" + next(flag_name(g) for t, _, g in iter_fields(type(cfg)) if t == s and g.name == name)
                out[f"{sec}.{f.name}"] = f"with {flag} {value} (only with {', '.join(allowed)})"
    return out
