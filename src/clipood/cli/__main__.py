"""``python -m clipood.cli`` (and under torchrun: ``torchrun ... -m clipood.cli train ...``)."""

import sys

from . import main

sys.exit(main())
