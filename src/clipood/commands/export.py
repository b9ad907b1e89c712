"""An exported model folder: the open_clip ``local-dir:`` folder plus clipood's record of its classifier.

    MODEL/open_clip_config.json, open_clip_model.safetensors   the (averaged) open_clip model
    MODEL/config.json, tokenizer*.json                         a Hugging Face text tower's own files
    MODEL/clipood.json                                         class names, templates, tau, head type
    MODEL/clipood_head.safetensors                             a linear head (ERM) when there is one
    MODEL/clipood_prompts.safetensors                          CoOp's context vectors (CoCoOp's meta-net too)

``load_classifier`` gives back what a user's code needs to classify with it; ``zero_shot_classifier`` makes one
of any CLIP (an open_clip folder without clipood.json, a named architecture) over class names given now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from safetensors.torch import save_file

from .. import __version__
from ..errors import ModelError
from ..io import atomic_path, read_json, write_json
from ..model import Backbone, LinearHead, PromptHead, load_backbone
from ..model.backbones import one_line, save_open_clip_folder
from ..model.finite import load_weights
from ..model.heads import encode_class_texts
from ..model.weights import EXPORT_CONFIG, EXPORT_WEIGHTS, weights_file
from ..templates import DEFAULT_TEMPLATE, expand_templates, is_template
from ..training.experiment import Model
from ..tuning import prompt_head

__all__ = ["Classifier", "HEADS", "HEAD_FILE", "META_FILE", "PROMPTS_FILE", "export_model", "exported_prompts",
           "head_kind", "exported_model_dir", "is_export", "load_classifier",
           "load_exported_head", "read_model_meta", "zero_shot_classifier"]

HEAD_FILE = "clipood_head.safetensors"
PROMPTS_FILE = "clipood_prompts.safetensors"
META_FILE = "clipood.json"
PROMPT_HEADS = ("coop", "cocoop")  # heads that are learned prompts (PROMPTS_FILE)
HEADS = ("text", "linear", *PROMPT_HEADS)  # clipood.json's 'head': what scores the classes


def export_model(exp: Model, out_dir: Path) -> None:
    """The trained (averaged) model as an open_clip local-dir folder, plus clipood's head and class list."""
    save_open_clip_folder(exp.backbone, out_dir)
    head = exp.classifier.head
    if isinstance(head, LinearHead):
        with atomic_path(out_dir / HEAD_FILE) as tmp:
            save_file({"weight": head.linear.weight.detach().float().cpu().contiguous(),
                       "bias": head.linear.bias.detach().float().cpu().contiguous()}, str(tmp))
    prompts = None
    if isinstance(head, PromptHead):  # the learned context (and meta-net): the towers are the pre-trained ones
        with atomic_path(out_dir / PROMPTS_FILE) as tmp:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp))
        learner = head.learner
        prompts = {"n_ctx": learner.n_ctx, "ctx_init": learner.ctx_init, "class_specific": learner.class_specific,
                   "class_position": learner.position}
    write_json(out_dir / META_FILE, {
        "clipood_version": __version__,
        "class_names": exp.index.class_names,
        "train_classes": exp.splits.train_classes,
        "templates": exp.templates,  # presets and files written out: self-contained
        "temperature": exp.temperature,
        "head": head_kind(head),
        **({"prompts": prompts} if prompts is not None else {}),
        "source_arch": exp.backbone.arch,
        "source_pretrained": exp.backbone.pretrained,
        "source_weights": exp.backbone.weights.about if exp.backbone.weights else None,
    })


def head_kind(head: torch.nn.Module) -> str:
    """What an export's clipood.json calls its head (``HEADS``)."""
    if isinstance(head, LinearHead):
        return "linear"
    if isinstance(head, PromptHead):
        return "cocoop" if head.meta_net is not None else "coop"
    return "text"


def exported_prompts(backbone: Backbone, model_dir: Path, meta: dict, class_names: Sequence[str]) -> PromptHead:
    """An export's learned prompts (CoOp, CoCoOp) scoring ``class_names``: the context learned on its training
    classes, applied to these (class-specific contexts only to the training classes themselves)."""
    path = model_dir / PROMPTS_FILE
    if not path.is_file():
        raise ModelError(f"--model: {model_dir} was trained with {meta['head']} prompts, but {PROMPTS_FILE} is "
                         f"missing; re-export the model")
    settings = meta.get("prompts") if isinstance(meta.get("prompts"), dict) else {}
    trained = [meta["class_names"][i] for i in meta["train_classes"]]
    try:
        head = prompt_head(backbone, trained, n_ctx=0 if settings.get("ctx_init") else int(settings.get("n_ctx", 0)),
                           ctx_init=str(settings.get("ctx_init", "")),
                           class_specific=bool(settings.get("class_specific", False)),
                           class_position=str(settings.get("class_position", "end")),
                           meta_net=meta["head"] == "cocoop")
        head.load_state_dict({k: v.to(head.learner.ctx.device) for k, v in load_weights(path).items()})
    except (RuntimeError, KeyError, ValueError) as e:
        raise ModelError(f"--model: {path} does not fit the prompts {META_FILE} describes ({one_line(e)}); "
                         f"re-export the model") from None
    return head if list(class_names) == trained else head.for_classes(class_names)


def _meta_problem(meta) -> Optional[str]:
    """What is wrong with a clipood.json's fields (a value of the wrong type), or None."""
    if not isinstance(meta, dict):
        return f"a JSON {type(meta).__name__}, not an object"
    strings = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)  # noqa: E731
    t = meta.get("temperature")
    checks = {
        "class_names": strings(meta.get("class_names", [])),
        "templates": strings(meta.get("templates", [])) and all(is_template(x) for x in meta.get("templates", [])),
        "temperature": t is None or (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
                                     and t > 0),
        "head": meta.get("head", "text") in HEADS,
        "train_classes": isinstance(meta.get("train_classes", []), list)
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(meta.get("class_names", []))
                for i in meta.get("train_classes", [])),
    }
    bad = next((k for k, ok in checks.items() if not ok), None)
    return None if bad is None else f"'{bad}' is {meta.get(bad)!r}"


def read_model_meta(model_dir: Path) -> dict:
    """clipood.json of an exported model, or one error line (not JSON, a field of the wrong type)."""
    path = Path(model_dir) / META_FILE
    meta = read_json(path, "--model")
    problem = _meta_problem(meta)
    if problem is not None:
        raise ModelError(f"--model: {path} is not a valid clipood model record ({problem}); re-export the model")
    return meta


def load_exported_head(exp: Model, model_dir: Path) -> None:
    """Put a saved linear head or learned prompts back (for `clipood eval` of an ERM, LP-FT, CoOp or CoCoOp run)."""
    meta_path = model_dir / META_FILE
    if not meta_path.is_file():
        return
    meta = read_model_meta(model_dir)
    if meta.get("head", "text") == "text":
        return
    if meta["class_names"] != exp.index.class_names:
        raise ModelError(f"{model_dir}: its {meta['head']} head was trained on other classes than --root has; "
                         f"evaluate it on the same class set")
    if meta["head"] in PROMPT_HEADS:
        trained = [meta["class_names"][i] for i in meta["train_classes"]]
        exp.classifier.head = exported_prompts(exp.backbone, model_dir, meta, trained).to(exp.device)
        exp.splits.train_classes = list(meta["train_classes"])
        return
    if not (model_dir / HEAD_FILE).is_file():
        raise ModelError(f"--model: {model_dir} was trained with a linear head, but {HEAD_FILE} is missing; "
                         f"re-export the model")
    sd = _head_weights(model_dir, len(meta["train_classes"]), exp.text_features.shape[1])
    head = LinearHead(exp.text_features[meta["train_classes"]], exp.temperature, "random")
    head.linear.load_state_dict(sd)
    exp.classifier.head = head.to(exp.device)
    exp.splits.train_classes = list(meta["train_classes"])




@dataclass
class Classifier:
    """An exported run's classifier: ``scores(images)`` are the logits over ``class_names``."""

    model: torch.nn.Module          # the open_clip model (image and text towers)
    preprocess: Callable            # PIL image -> tensor, the model's eval transform
    class_names: list[str]
    head: torch.Tensor              # (C, D) normalised class-text embeddings, or a linear head's weights / tau
    bias: Optional[torch.Tensor]    # the linear head's bias (None for the class-text head)
    temperature: float
    backbone: Backbone
    prompts: Optional[PromptHead] = None  # learned prompts (CoOp, CoCoOp): other class names are scored with them

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> torch.Tensor:
        feats = torch.nn.functional.normalize(self.model.encode_image(images).float(), dim=-1)
        if self.prompts is not None and self.prompts.meta_net is not None:  # CoCoOp: a classifier per image
            return self.prompts(feats).float() / self.temperature
        logits = feats @ self.head.T
        return logits + self.bias if self.bias is not None else logits / self.temperature


def exported_model_dir(path: str | Path, option: str = "--model") -> Path:
    """RUN_DIR, RUN_DIR/model or a plain open_clip folder -> the model folder, or one line naming ``option`` and
    what to pass."""
    path = Path(path)
    if (path / "model" / EXPORT_CONFIG).is_file():
        path = path / "model"
    if not (path / EXPORT_CONFIG).is_file() or weights_file(path) is None:
        raise ModelError(f"{option}: {path} is not an exported model folder nor an open_clip one ({EXPORT_CONFIG} "
                         f"and its weights, e.g. {EXPORT_WEIGHTS}); pass RUN_DIR, RUN_DIR/model or an open_clip folder"
                         + ("; for a CLIP by name pass --arch NAME --pretrained TAG instead" if option == "--model"
                            else ""))
    return path


def is_export(model_dir: Path) -> bool:
    """Whether a model folder is clipood's export (it has clipood.json: class names, templates, head), not a plain
    open_clip folder."""
    return (Path(model_dir) / META_FILE).is_file()


def _head_weights(model_dir: Path, rows: int, dim: int) -> dict[str, torch.Tensor]:
    """The linear head's weight (rows x dim) and bias (rows), checked against clipood.json's train_classes."""
    path = model_dir / HEAD_FILE
    if not path.is_file():
        raise ModelError(f"--model: {model_dir} was trained with a linear head, but {HEAD_FILE} is missing; "
                         f"re-export the model")
    sd = load_weights(path)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    if shapes != {"weight": (rows, dim), "bias": (rows,)}:
        raise ModelError(f"--model: {path} holds {shapes}, not a linear head over the {rows} training classes of "
                         f"{model_dir / META_FILE} (weight {(rows, dim)}, bias {(rows,)}); re-export the model")
    return sd


def zero_shot_classifier(backbone: Backbone, names: Sequence[str], templates: Sequence[str],
                         temperature: Optional[float] = None) -> Classifier:
    """Any CLIP as a classifier over ``names``: cosine similarity to their class texts, divided by tau (the given one,
    else 1 / the model's learned logit scale)."""
    if temperature is None:
        if not backbone.logit_scale:
            raise ModelError(f"{backbone.arch} has no learned logit scale to take tau from; it cannot score classes "
                             f"as a CLIP does")
        temperature = 1.0 / backbone.logit_scale
    backbone.model.eval()
    text = encode_class_texts(backbone.model, backbone.tokenizer, list(names), expand_templates(templates))
    return Classifier(backbone.model, backbone.preprocess_val, list(names), text, None, float(temperature), backbone)


def load_classifier(model_dir: str | Path, *, device: str | torch.device = "cpu") -> Classifier:
    """The model, its preprocessing, class names and head of an exported run (``RUN`` or ``RUN/model``)."""
    model_dir = exported_model_dir(model_dir)
    if not is_export(model_dir):
        raise ModelError(f"--model: {model_dir} has no {META_FILE}: it is a plain open_clip model, which has no "
                         f"classes of its own; name the classes to score with --classes A,B,C (or --classes-file FILE)")
    backbone = load_backbone(f"local-dir:{model_dir}", device=device)
    meta = read_model_meta(model_dir)
    names = list(meta.get("class_names", []))
    tau = float(meta.get("temperature") or 1.0 / (backbone.logit_scale or 100.0))
    backbone.model.eval()
    text = encode_class_texts(backbone.model, backbone.tokenizer, names, meta.get("templates", [DEFAULT_TEMPLATE]))
    head, bias, prompts = text, None, None
    if meta.get("head") in PROMPT_HEADS:
        prompts = exported_prompts(backbone, model_dir, meta, names)
        head = prompts.class_features() if prompts.meta_net is None else text  # CoCoOp's depends on the image
    if meta.get("head") == "linear":
        sd = _head_weights(model_dir, len(meta["train_classes"]), text.shape[1])
        rows = torch.as_tensor(meta["train_classes"])
        head = text / tau
        bias = torch.zeros(len(names))
        head[rows], bias[rows] = sd["weight"].float(), sd["bias"].float()
    return Classifier(backbone.model, backbone.preprocess_val, names, head.to(device),
                      None if bias is None else bias.to(device), tau, backbone, prompts)
