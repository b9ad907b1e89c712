"""``python -m clipood``: the ``clipood`` command."""

import sys

from .cli import main

sys.exit(main())
