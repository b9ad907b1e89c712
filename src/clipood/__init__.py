"""clipood: fine-tune CLIP-style models so they stay robust out of distribution.

The method of "CLIPood: Generalizing CLIP to Out-of-Distributions" (ICML 2023):
Margin Metric Softmax (``losses``) and Beta Moving Average (``averaging``) on
open_clip backbones (``model``), with DomainBed and base-to-new protocols (``data``).

One import gives what a user's own code needs (as open_clip's ``__init__`` re-exports
``create_model_and_transforms``): a whole run from a ``Config`` (``train``, ``zeroshot``,
``evaluate``, ``load_classifier``; around a trained model ``predict``, ``wise_ft_models``,
``export_hf``), or the pieces for one's own loop (``load_backbone``,
``encode_class_texts``, ``train_transform``, ``margin_metric_softmax``, ``BetaMovingAverage``,
``averaged_tensors``, ``fit``). Names load on first use, so ``import clipood`` is cheap.
"""

import sys
from importlib import import_module
from importlib.abc import MetaPathFinder

__version__ = "0.1.0"


class _NoWandbForLibraries(MetaPathFinder):
    """``import wandb`` from timm or open_clip (timm's ``utils.summary`` tries it at import, open_clip imports
    timm) fails as if wandb were not installed: importing it costs seconds and leaves ``/tmp/tmp*wandb-*``
    folders behind a killed process. clipood imports wandb itself when ``--report-to wandb`` asks for it
    (``tracking.py``); timm's W&B logging, which clipood never calls, is then simply off."""

    BLOCKED_FOR = ("timm", "open_clip")

    def find_spec(self, name, path=None, target=None):
        if name != "wandb" and not name.startswith("wandb."):
            return None
        frame = sys._getframe(1)
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            if not module.startswith(("importlib", "_frozen_importlib")) and module != __name__:
                if module.split(".")[0] in self.BLOCKED_FOR:
                    raise ModuleNotFoundError(f"No module named {name!r} (not for {module}: clipood keeps wandb "
                                              f"out unless --report-to wandb)", name=name)
                return None
            frame = frame.f_back
        return None


if not any(isinstance(f, _NoWandbForLibraries) for f in sys.meta_path):
    sys.meta_path.insert(0, _NoWandbForLibraries())

_WHERE = {
    "Config": "config", "validate": "config",
    "train": "commands", "zeroshot": "commands", "evaluate": "commands", "load_classifier": "commands",
    "Classifier": "commands",
    "predict": "commands.predict", "wise_ft_models": "commands.wise_ft", "export_hf": "commands.hub",
    "load_backbone": "model", "encode_class_texts": "model", "set_trainable": "model", "Backbone": "model",
    "train_transform": "data.transforms",
    "margin_metric_softmax": "losses", "MetricSoftmaxLoss": "losses", "LogitCrossEntropy": "losses",
    "build_loss": "losses",
    "BetaMovingAverage": "averaging", "ExponentialMovingAverage": "averaging", "UniformAverage": "averaging",
    "NoAverage": "averaging", "WeightAverage": "averaging", "averaged_tensors": "averaging",
    "beta_weights": "averaging", "build_averager": "averaging",
    "build_experiment": "training.experiment", "fit": "training.loop",
    "ClipoodError": "errors",
}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clipood' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
