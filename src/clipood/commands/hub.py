"""``clipood export MODEL --hf DIR [--push REPO]``: open_clip's Hugging Face Hub layout and a model card.

The folder is written by open_clip's own ``save_for_hf`` (``open_clip_config.json``,
``open_clip_model.safetensors``, the tokenizer files of a Hugging Face text tower), so
``open_clip.create_model_from_pretrained('hf-hub:REPO')`` (or ``'local-dir:DIR'``) loads it
as any open_clip model; clipood's ``clipood.json`` (class names, templates, tau, head) rides
along, so ``clipood predict`` and ``clipood eval`` take the folder too. The model card
(README.md, made with open_clip's ``generate_readme``) states the method, the data, the
settings and the results, read from the run the model came from.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .. import __version__
from ..averaging import AVERAGERS
from ..errors import ClipoodError, ModelError
from ..io import DiskFull, is_disk_full, read_json
from ..losses import LOSSES
from ..model.backbones import Backbone, load_backbone
from ..rundir import RunDir
from ..tuning import TUNINGS
from .export import HEAD_FILE, META_FILE, PROMPTS_FILE, exported_model_dir, read_model_meta

__all__ = ["export_hf", "model_card"]


class _BundledTokenizer:
    """For towers whose tokenizer ships with open_clip itself (CLIP's BPE): there are no files to save."""

    def save_pretrained(self, folder) -> None:
        return None



def _fmt(v) -> str:
    return f"{100 * v:.1f}" if isinstance(v, float) and v == v else "-"


def _params(registry, section) -> str:
    """' (lambda 0.3)': the values of the parameters the section's entry declares (its registry), if any."""
    values = registry.section_arguments(section) if section.name in registry else {}
    params = {p.name: p for p in registry.params()}
    return f" ({', '.join(f'{params[k].option} {v}' for k, v in values.items())})" if values else ""


def model_card(model_dir: Path, meta: dict, repo: Optional[str]) -> dict:
    """open_clip's model-card dict: method, data, settings and results of the run behind ``model_dir``."""
    run_dir = model_dir.parent
    results = read_json(run_dir / "results.json", "results.json") if (run_dir / "results.json").is_file() else {}
    cfg = RunDir.open(run_dir)[1] if (run_dir / "config.yaml").is_file() else None
    method = results.get("method") or {}
    details = {
        "Fine-tuned with": f"clipood {__version__} (CLIPood, Shu et al., ICML 2023: Margin Metric Softmax + Beta "
                           f"Moving Average)",
        "Method": (f"loss {method.get('loss')}, averaging {method.get('averaging')}" if method else
                   "not recorded (no results.json beside the model)"),
        "Architecture": meta.get("source_arch") or "see open_clip_config.json",
        "Started from": meta.get("source_weights") or meta.get("source_pretrained") or "not recorded",
        "Classes": f"{len(meta.get('class_names', []))} ({', '.join(meta.get('class_names', [])[:8])}"
                   f"{', ...' if len(meta.get('class_names', [])) > 8 else ''})",
        "Templates": f"{len(meta.get('templates', []))} (first: {(meta.get('templates') or ['-'])[0]!r})",
        "Temperature (tau)": f"{meta.get('temperature')}",
        "Licence": "that of the weights it started from (see 'Started from'); the fine-tuning adds no terms",
    }
    if cfg is not None:
        d, t = cfg.data, cfg.train
        details["Data"] = (f"{d.dataset or 'folder'} at {d.root}; held-out domains: "
                           f"{', '.join(d.holdout_domains) or 'none'}; base-to-new split: {d.base_to_new}")
        details["Settings"] = (f"{t.steps} steps, batch {t.batch_size} per training domain, lr {cfg.optim.lr}, "
                               f"weight decay {cfg.optim.weight_decay}, tuning {cfg.tuning.name}"
                               f"{_params(TUNINGS, cfg.tuning)}, loss {cfg.loss.name}"
                               f"{_params(LOSSES, cfg.loss)}, "
                               f"averaging {cfg.averaging.name}{_params(AVERAGERS, cfg.averaging)}, trainable "
                               f"{cfg.model.trainable}, norm layers "
                               f"{t.norm_layers}, seed {t.seed}, precision {cfg.compute.precision}")
    rows = ["| split | role | images | accuracy | base | new | H |", "|---|---|---|---|---|---|---|"]
    for name, e in (results.get("final") or {}).items():
        rows.append(f"| {name} | {e.get('role', '')} | {e.get('n', '')} | {_fmt(e.get('accuracy'))} | "
                    f"{_fmt(e.get('base'))} | {_fmt(e.get('new'))} | {_fmt(e.get('H'))} |")
    where = f"hf-hub:{repo}" if repo else "local-dir:PATH/TO/THIS/FOLDER"
    return {
        "tags": ("clip", "clipood", "open_clip", "zero-shot-image-classification"),
        "license": "other",
        "description": "A CLIP model whose image tower was fine-tuned with clipood to stay robust out of "
                       "distribution (new domains and new classes); the text tower is the frozen original.",
        "details": details,
        "comparison": ("Accuracy (%) of this model, as measured by clipood on the run's splits:\n\n" + "\n".join(rows)
                       if len(rows) > 2 else "No results were recorded beside this model."),
        "usage": (f"```python\nimport open_clip\nmodel, _, preprocess = open_clip.create_model_and_transforms("
                  f"'{where}')\ntokenizer = open_clip.get_tokenizer('{where}')\n```\n\nor, over any class names:\n\n"
                  f"```bash\nclipood predict --model THIS_FOLDER --classes zebra,teapot,violin IMAGES/ --out p.csv\n"
                  f"```\n"),
        "citation": "@inproceedings{shu2023clipood,\n  title={CLIPood: Generalizing CLIP to Out-of-Distributions},\n"
                    "  author={Shu, Yang and Guo, Xingzhuo and Wu, Jialong and Wang, Ximei and Wang, Jianmin and "
                    "Long, Mingsheng},\n  booktitle={ICML},\n  year={2023}\n}",
    }


def _hub_config(backbone: Backbone, name: str) -> dict:
    """model_cfg with a Hugging Face text tower named by where it will be (the repo, or the folder)."""
    cfg = copy.deepcopy(backbone.model_cfg)
    text = cfg.get("text_cfg", {})
    if text.get("hf_model_name"):
        text["hf_model_name"] = text["hf_tokenizer_name"] = name
    return cfg


def export_hf(model: str | Path, out: str | Path, *, push: Optional[str] = None, private: bool = False) -> Path:
    """MODEL (RUN or RUN/model) in open_clip's Hugging Face layout with a model card, in OUT; uploaded
    with open_clip's push_to_hf_hub when ``push`` names a repository."""
    from open_clip.push_to_hf_hub import generate_readme, save_for_hf
    model_dir = exported_model_dir(model, "MODEL")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClipoodError(f"--hf: {out} exists and is not an empty folder; choose a new folder")
    if push and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ClipoodError(f"--push {push}: HF_HUB_OFFLINE=1 is set, so nothing can be uploaded; unset it (and log "
                           f"in with `hf auth login`) to push, or drop --push")
    meta = read_model_meta(model_dir) if (model_dir / META_FILE).is_file() else {}
    backbone = load_backbone(f"local-dir:{model_dir}")
    model_cfg = _hub_config(backbone, push or str(out.resolve()))
    tokenizer = backbone.tokenizer if hasattr(backbone.tokenizer, "save_pretrained") else _BundledTokenizer()
    card = model_card(model_dir, meta, push)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        save_for_hf(backbone.model, tokenizer, model_cfg, str(tmp), safe_serialization=True)
        if backbone.has_hf_text:
            backbone.model.text.config.save_pretrained(tmp)  # the text tower's config.json, beside its tokenizer
        for extra in (META_FILE, HEAD_FILE, PROMPTS_FILE):
            if (model_dir / extra).is_file():
                shutil.copyfile(model_dir / extra, tmp / extra)
        (tmp / "README.md").write_text(generate_readme(copy.deepcopy(card), push.split("/")[-1] if push else
                                                       model_dir.parent.name), encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        for p in [tmp, *tmp.iterdir()]:
            p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):  # safetensors and the tokenizer's writers say so in their own error types
            raise DiskFull(out).with_hint(f"nothing was left in {out.parent}; free some space and export again") \
                from None
        raise
    if push:
        _push(backbone, tokenizer, model_cfg, out, push, private, card)
    return out


def _push(backbone: Backbone, tokenizer, model_cfg: dict, folder: Path, repo: str, private: bool, card: dict) -> None:
    """open_clip's push_to_hf_hub for the model and card, then clipood's files beside them."""
    from huggingface_hub import upload_file
    from open_clip.push_to_hf_hub import push_to_hf_hub
    try:
        push_to_hf_hub(backbone.model, tokenizer, model_cfg, repo, private=private, model_card=copy.deepcopy(card),
                       safe_serialization=True, commit_message="Add model (clipood export)")
        for name in ("config.json", META_FILE, HEAD_FILE, PROMPTS_FILE):
            if (folder / name).is_file():
                upload_file(path_or_fileobj=str(folder / name), path_in_repo=name, repo_id=repo,
                            commit_message=f"Add {name} (clipood export)")
    except Exception as e:  # noqa: BLE001 -- network and auth faults of the hub client, in one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise ModelError(f"--push {repo}: the upload failed ({type(e).__name__}: {first}); "
                         f"the folder {folder} is complete, push it again or upload it by hand") from None
