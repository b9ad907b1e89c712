"""Imported first by the ``clipood`` command: a working folder that was deleted is said in one line.

Started in a folder deleted since (the shell still in it), the command would otherwise die in torch's
import with an oneMKL message that names neither the folder nor the fix.
"""

import os
import sys

try:
    os.getcwd()
except OSError:
    print("clipood: error: the working folder no longer exists (deleted while this shell was in it); cd to an "
          "existing folder and run again", file=sys.stderr)
    raise SystemExit(2) from None
