"""Every option checked before any work starts: the checks each field declares, then the few that
involve several options or the file system. One ConfigError line names the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..templates import PRESETS, expand_templates, is_template, is_template_file
from ..tracking import check_report_to
from .fields import check_value, iter_fields, out_of_range
from .tree import SECTION_SCOPE, Config

__all__ = ["check_fields", "check_name", "check_output_dir", "check_run", "check_templates", "validate"]


def _check(ok: bool, option: str, value: Any, allowed: str) -> None:
    if not ok:
        raise out_of_range(option, value, allowed)


def check_fields(cfg, command: Optional[str] = None) -> None:
    """The choices and ranges of every field of a config tree (fields.opt metadata) that ``command`` uses."""
    for sec, _, f in iter_fields(type(cfg)):
        scope = f.metadata.get("scope") or SECTION_SCOPE.get(sec, ())
        if command is None or not isinstance(cfg, Config) or command in scope:
            check_value(f, getattr(getattr(cfg, sec), f.name))


def check_name(name: Optional[str]) -> None:
    """A run name is one folder inside --output-dir: no separators, no '..'."""
    if name is None:
        return
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(f"--name: {name!r} is not a folder name inside --output-dir; use letters, digits, "
                          f"'-', '_' or '.', without '/'")


def check_output_dir(output_dir: str) -> None:
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir: {out} is a file, not a folder; choose a folder for the run directories")


def check_run(run) -> None:
    """The run section of a config tree (fine-tuning's and pretraining's): its name, folder and trackers."""
    check_name(run.name)
    check_output_dir(run.output_dir)
    check_report_to(run.report_to)


def check_templates(templates: list) -> None:
    """Each value a template, a preset or a readable file of templates (one line naming what is wrong)."""
    for t in templates:
        if isinstance(t, str) and "{" not in t and t not in PRESETS and ("/" in t or t.endswith(".txt")) \
                and not is_template_file(t):
            raise ConfigError(f"--template: {t}: file not found (a file of templates, one per line, each with one "
                              f"'{{}}')")
        named = is_template(t) or t in PRESETS or is_template_file(t)
        _check(named, "template", t, f"a prompt with one '{{}}' where the class name goes and no other braces "
                                     f"(e.g. 'a photo of a {{}}.'), a preset ({', '.join(PRESETS)}), or a file of "
                                     f"templates")
    expand_templates(templates)  # the files' contents


def check_device(device: str) -> None:
    ok = device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())
    _check(ok, "device", device, "auto, cpu, cuda, cuda:N")


def validate(cfg: Config, *, training: bool = True) -> Config:
    """Check every value before any work starts; raise ConfigError naming the option. Paths starting
    with '~' are expanded in place (``io.expand_home``), so the run and its record agree."""
    from .io import expand_home
    expand_home(cfg)
    check_fields(cfg, "train" if training else "zeroshot")
    m, d, t = cfg.model, cfg.data, cfg.train
    _check(bool(m.arch), "arch", m.arch, "an open_clip architecture name or local-dir:PATH")
    tr = m.trainable
    ok = tr == "all" or (tr.startswith("last:") and tr[5:].isdigit() and int(tr[5:]) >= 1)
    _check(ok, "trainable", tr, "'all' or 'last:N' with N >= 1")
    _check(len(m.templates) > 0, "template", m.templates, "one or more templates, e.g. 'a photo of a {}.'")
    check_templates(m.templates)
    check_device(cfg.compute.device)
    if training:
        _check(cfg.optim.warmup_steps < t.steps, "warmup-steps", cfg.optim.warmup_steps,
               f"fewer than --steps ({t.steps})")
    check_run(cfg.run)
    if d.root is None:
        raise ConfigError("--root: no dataset given; pass --root PATH (see 'clipood data --help' for a bundled one)")
    if not Path(d.root).is_dir():
        raise ConfigError(f"--root: folder not found: {d.root}")
    if d.class_names is not None and not Path(d.class_names).is_file():
        raise ConfigError(f"--class-names: file not found: {d.class_names}")
    return cfg
