"""Prompt templates: the class text is a template with '{}' where the class name goes.

``--template`` takes a template ('a photo of a {}.'), a preset name, or a text file of
templates (one per line; blank lines and lines starting with '#' skipped). 'auto' (the
default) is the prompt the paper's official code uses for the data: a named dataset's own
(CoOp's per-dataset prompts for Table 3, e.g. EuroSAT's 'a centered satellite photo of {}.';
``Benchmark.template``), 'a photo of a {}.' for DomainBed's datasets, ImageNet and a folder.
The other presets are open_clip's own lists (``open_clip.zero_shot_metadata``): 'openai-imagenet', the 80
templates of CLIP's ImageNet evaluation, and 'simple', its 7-template subset. Several
templates give an ensemble: per class, the renormalised mean of the normalised embeddings
(``model.heads.encode_class_texts``, which calls ``open_clip.build_zero_shot_classifier``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import ConfigError

__all__ = ["AUTO", "DEFAULT_TEMPLATE", "PRESETS", "expand_templates", "is_template", "is_template_file",
           "preset_templates"]

AUTO = "auto"
DEFAULT_TEMPLATE = "a photo of a {}."  # the paper's prompt (CLIP's), for data that names no other
PRESETS = (AUTO, "openai-imagenet", "simple")


def preset_templates(name: str) -> list[str]:
    """open_clip's template list as format strings (its entries are functions of the class name)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES
    lists = {"openai-imagenet": OPENAI_IMAGENET_TEMPLATES, "simple": SIMPLE_IMAGENET_TEMPLATES}
    return [t("{}") if callable(t) else t for t in lists[name]]


def is_template(t: object) -> bool:
    """One '{}' where the class name goes and no other braces."""
    try:
        return isinstance(t, str) and t.count("{}") == 1 and t.format("x") == t.replace("{}", "x", 1)
    except (IndexError, KeyError, ValueError):
        return False


def is_template_file(v: object) -> bool:
    """A value that names an existing file of templates (no braces, not a preset)."""
    if not isinstance(v, str) or "{" in v or v in PRESETS:
        return False
    try:
        return Path(v).expanduser().is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: no file
        return False


def _from_file(path: Path) -> list[str]:
    from .io import read_user_text
    lines = read_user_text(path, "--template (a file of templates)", ConfigError).splitlines()
    out = [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]
    if not out:
        raise ConfigError(f"--template: the template file {path} holds no template (one per line, with '{{}}')")
    for n, t in enumerate(out, 1):
        if not is_template(t):
            raise ConfigError(f"--template: {path}, template {n} {t!r} needs one '{{}}' where the class name goes "
                              f"and no other braces")
    return out


def expand_templates(values: Sequence[str], auto: str = DEFAULT_TEMPLATE) -> list[str]:
    """The templates that ``values`` name: presets and files expanded, in order; 'auto' is ``auto``, the
    data's own prompt."""
    out: list[str] = []
    for v in values:
        if v == AUTO:
            out.append(auto)
        elif v in PRESETS:
            out += preset_templates(v)
        elif is_template(v):
            out.append(v)
        elif is_template_file(v):
            out += _from_file(Path(v).expanduser())
        else:
            raise ConfigError(f"--template: {v!r} is not a template with one '{{}}' where the class name goes "
                              f"(e.g. 'a photo of a {{}}.'), a preset ({', '.join(PRESETS)}), or a file of templates")
    if not out:
        raise ConfigError("--template: give one or more templates, e.g. 'a photo of a {}.'")
    return out
