"""Image folders (DomainBed / ImageFolder layouts), protocols as index splits, and loading."""

from .folder import ImageIndex, readable_name, scan
from .splits import EvalSet, Splits, base_new_classes, in_out_split, make_splits

__all__ = ["EvalSet", "ImageIndex", "Splits", "base_new_classes", "in_out_split", "make_splits",
           "readable_name", "scan"]
