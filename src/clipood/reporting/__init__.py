"""Reports over many runs: the paper's table layouts with the published numbers beside the
user's, model selection (DomainBed), plots and one HTML page (``clipood report``)."""

from .build import Report, build_report

__all__ = ["Report", "build_report"]
