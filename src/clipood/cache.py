"""Where clipood keeps what it builds: ``$CLIPOOD_CACHE``, by default ``~/.cache/clipood``.

Read at call time, so a test or a user can point it elsewhere for one process.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    return Path(os.environ.get("CLIPOOD_CACHE") or Path.home() / ".cache" / "clipood")
