"""Backbones (open_clip) and the heads that score classes on image features."""

from .backbones import Backbone, export_config, list_architectures, load_backbone, set_trainable
from .heads import ImageClassifier, LinearHead, TextHead, TowerTextHead, encode_class_texts, text_parameters
from .prompts import MetaNet, PromptHead, PromptLearner

__all__ = [
    "Backbone", "ImageClassifier", "LinearHead", "MetaNet", "PromptHead", "PromptLearner", "TextHead",
    "TowerTextHead", "encode_class_texts", "export_config", "list_architectures", "load_backbone", "set_trainable",
    "text_parameters",
]
