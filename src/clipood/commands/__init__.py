"""What the ``clipood`` command runs, callable from Python: ``train``, ``zeroshot``, ``evaluate``."""

from .export import Classifier, load_classifier
from .run import evaluate, resume_config, train, zeroshot

__all__ = ["Classifier", "evaluate", "load_classifier", "resume_config", "train", "zeroshot"]
