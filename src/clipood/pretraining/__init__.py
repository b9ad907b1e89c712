"""Contrastive image-text pretraining (``clipood pretrain``): CLIP's loss on an image-caption table.

For a backbone that can be built offline: the weights it writes load through the same
open_clip path as any pretrained CLIP (``--arch local-dir:PATH`` or an installed tag).
"""
