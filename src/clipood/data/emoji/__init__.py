"""A multi-domain, open-class image benchmark rendered from emoji sets shipped in npm packages.

Domains are designers (Twemoji, OpenMoji, Noto, Fluent flat, Fluent high contrast,
EmojiOne); classes are the depictable things every one of them draws, named from
Unicode CLDR data. ``clipood data build emoji`` writes it in the DomainBed layout;
docs/benchmark.md describes the sources, licences, rules and counts.
"""

from .build import BuildReport, build_emoji, read_captions
from .sources import DOMAINS, ENV_VAR, Domain

# The held-out domain of the default job: OpenMoji's thin-outline drawings are the least
# like every other designer's (lowest same-class similarity to each of them, also to its
# nearest one); the monochrome set shares Fluent's silhouettes. Measured in docs/benchmark.md.
DEFAULT_HOLDOUT = "openmoji"

__all__ = ["BuildReport", "DEFAULT_HOLDOUT", "DOMAINS", "Domain", "ENV_VAR", "build_emoji", "read_captions"]
