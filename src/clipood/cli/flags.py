"""Config options as flags: one per field a command takes (its ``scope``), defaults < --config YAML <
flags, and what a user set (so an option that does not apply gets one warning line)."""

from __future__ import annotations

import argparse
from typing import Optional

from ..config import (
    DEFAULT_PROFILE,
    PROFILES,
    SECTION_SCOPE,
    Config,
    allowed,
    applies,
    apply_profile,
    default_of,
    field_type,
    flag_name,
    from_dict,
    given_keys,
    irrelevant_keys,
    iter_fields,
    parse_yaml,
    runtime_keys,
)
from ..console import warn
from ..data.folder import layout_names
from ..errors import ClipoodError

__all__ = ["MODEL_CHOICE_KEYS", "add_config_flags", "check_model_or_arch", "config_from_args", "flag_of",
           "flag_overrides", "option_help", "resume_overrides", "warn_inapplicable"]

# Options whose values a registry above the config layer holds (the config cannot import it): the parser offers them.
REGISTERED_CHOICES = {"data.layout": layout_names}  # 'train' options for commands that take only how to run


def _fmt_default(v) -> str:
    if isinstance(v, list):
        return " ".join(map(str, v)) if v else "none"
    return "none" if v is None else str(v)


def add_config_flags(parser: argparse.ArgumentParser, command: str, root=Config) -> None:
    """One flag per option ``command`` takes (a field's ``scope``, else its section's), grouped by section."""
    groups = {}
    for sec, sec_cls, f in iter_fields(root):
        scope = (f.metadata.get("scope") or SECTION_SCOPE.get(sec, ("train",))) if root is Config else (command,)
        if command not in scope:
            continue
        if sec not in groups:
            groups[sec] = parser.add_argument_group(f"{sec} options")
        g = groups[sec]
        tp, optional, is_list = field_type(sec_cls, f)
        default = default_of(f)
        limits = "" if "choices" in f.metadata else allowed(f)  # argparse lists the choices itself
        help_text = f"{f.metadata['help']}{applies(f, root)}{limits} (default: {_fmt_default(default)})"
        help_text = help_text.replace("%", "%%")
        name = "--" + flag_name(f)
        dest = f"{sec}.{f.name}"
        kw = dict(dest=dest, default=argparse.SUPPRESS, help=help_text)
        if "choices" in f.metadata or dest in REGISTERED_CHOICES:
            kw["choices"] = f.metadata.get("choices") or REGISTERED_CHOICES[dest]()
        if tp is bool:
            g.add_argument(name, action=argparse.BooleanOptionalAction, **kw)
        elif is_list and f.name == "betas":
            g.add_argument(name, nargs=2, metavar=("B1", "B2"), **kw)
        elif is_list:
            g.add_argument(name, action="append", metavar="VALUE", **kw)
        else:
            g.add_argument(name, metavar=tp.__name__.upper() if not kw.get("choices") else None, **kw)


def flag_overrides(args: argparse.Namespace) -> dict:
    """The config options given as flags (the others are absent: their defaults are SUPPRESSed)."""
    overrides: dict = {}
    for key, value in vars(args).items():
        if "." in key:
            sec, name = key.split(".", 1)
            overrides.setdefault(sec, {})[name] = value
    return overrides


def config_from_args(args: argparse.Namespace, base: Optional[Config] = None) -> tuple[Config, set[str]]:
    """Defaults < --profile < --config YAML < flags given on the command line; also the options the user set.

    The fine-tuning tree takes a profile (``--profile``, or ``profile:`` in the YAML file); pretraining has none."""
    cfg = base or Config()
    given: set[str] = set()
    layers: list[tuple[dict, str]] = []
    profile = getattr(args, "profile", None)
    if getattr(args, "config", None):
        data = parse_yaml(args.config)
        if isinstance(cfg, Config) and isinstance(data, dict) and "profile" in data:
            data = dict(data)
            in_file = data.pop("profile")
            if in_file not in PROFILES:
                raise ClipoodError(f"--config: {args.config}: unknown profile {in_file!r}; known: "
                                   f"{', '.join(PROFILES)}")
            profile = profile or in_file
        layers.append((data, str(args.config)))
        given |= given_keys(data)
    overrides = flag_overrides(args)
    layers.append((overrides, "command line"))
    given |= given_keys(overrides)
    if isinstance(cfg, Config):
        from ..data.datasets import splits_by_domain
        return apply_profile(profile or DEFAULT_PROFILE, layers, lambda c: splits_by_domain(c.data.dataset),
                             base=cfg), given
    for data, source in layers:
        cfg = from_dict(data, cfg, source=source)
    return cfg, given


def flag_of(key: str, root=Config) -> str:
    sec, name = key.split(".", 1)
    f = next(f for s, _, f in iter_fields(root) if s == sec and f.name == name)
    return "--" + flag_name(f)


def warn_inapplicable(cfg, given: set[str], root=Config) -> None:
    """One warning line per option the user set that this configuration does not use."""
    for key, why in sorted(irrelevant_keys(cfg).items()):
        if key in given:
            warn(f"{flag_of(key, root)} does not apply {why}; it is ignored")


# The options that say which CLIP to load; a model folder given as --model, MODEL_A carries its own.
MODEL_CHOICE_KEYS = ("model.arch", "model.pretrained", "model.activation", "model.interpolation")


def check_model_or_arch(given: set[str], what: str) -> None:
    """A model folder (``what``: --model, MODEL_A) and --arch/--pretrained both name the model: one line, not a
    silent choice of one of them."""
    both = [flag_of(k) for k in MODEL_CHOICE_KEYS if k in given]
    if both:
        raise ClipoodError(f"{both[0]}: does not apply with {what}, a model folder that carries its own architecture "
                           f"and weights; give {what} or --arch/--pretrained, not both")


def option_help(key: str, root=Config) -> str:
    """The help text of option 'section.field' (one source for a flag that a command adds by hand)."""
    sec, name = key.split(".", 1)
    return next(f.metadata["help"] for s, _, f in iter_fields(root) if s == sec and f.name == name)


def resume_overrides(args: argparse.Namespace, cfg, root=Config):
    """With --resume the run's saved config is used; only options of how it executes may be given."""
    overrides = flag_overrides(args)
    given = given_keys(overrides)
    fixed = sorted(given - runtime_keys(root))
    if fixed or getattr(args, "config", None) or getattr(args, "profile", None):
        what = ", ".join(flag_of(k, root) for k in fixed) if fixed else "--config" if getattr(args, "config", None) \
            else "--profile"
        raise ClipoodError(f"--resume: {what} cannot change a run that has started (its config.yaml holds the "
                           f"options); start a new run, or give only options of how it runs (e.g. --workers, "
                           f"--device, --log-every)")
    return from_dict(overrides, cfg, source="command line")


