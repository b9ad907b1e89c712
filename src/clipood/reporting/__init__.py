"""Reports over many runs: the paper's table layouts with the published numbers beside the
user's, model selection (DomainBed), plots and one HTML page (``clipood report``); and the
plain-text tables every command prints (``text``)."""

__all__ = ["Report", "build_report"]


def __getattr__(name):  # the report pulls in matplotlib: only when asked for
    if name in __all__:
        from . import build
        return getattr(build, name)
    raise AttributeError(name)
