"""``python -m clipood.config > docs/configuration.md``"""

from .docs import options_markdown

print(options_markdown(), end="")
