"""clipood: fine-tune CLIP-style models so they stay robust out of distribution.

The method of "CLIPood: Generalizing CLIP to Out-of-Distributions" (ICML 2023):
Margin Metric Softmax (``losses``) and Beta Moving Average (``averaging``) on
open_clip backbones (``model``), with DomainBed and base-to-new protocols (``data``).
"""

__version__ = "0.1.0"
