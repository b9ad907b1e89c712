"""``python -m clipood.data.datasets > docs/datasets.md``"""

from . import datasets_markdown

print(datasets_markdown(), end="")
