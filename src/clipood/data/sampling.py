"""Training batches as a pure function of the step: exact resume and rank-independent.

Each step draws ``per_domain`` images from every training domain (DomainBed / CLIPood:
12 per source domain). Every domain is an endless stream of seeded permutations of its
images (or, with ``replacement``, of independent uniform draws, as DomainBed's
InfiniteDataLoader samples), so the batch of step s is computed directly from (seed, s):
resuming at step s needs no replay, and under DDP each rank takes its slice of the same
global batch.
Each drawn image also gets its own augmentation seed, so random crops do not depend on
worker processes or on where a run was resumed.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

__all__ = ["DomainBalancedBatches", "mix"]

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """Deterministic 63-bit hash of integers (splitmix64 steps)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK)) & _MASK
        h = (h + 0x9E3779B97F4A7C15) & _MASK
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        h = z ^ (z >> 31)
    return h >> 1


class DomainBalancedBatches(torch.utils.data.Sampler):
    """Yields, for steps start..steps-1, a list of (image index, augmentation seed)."""

    def __init__(self, domains: Sequence[Sequence[int]], per_domain: int, steps: int, seed: int,
                 start: int = 0, rank: int = 0, world_size: int = 1, replacement: bool = False):
        self.domains = [list(d) for d in domains if len(d) > 0]
        self.replacement = replacement
        self.per_domain = per_domain
        self.steps, self.seed, self.start = steps, seed, start
        self.rank, self.world_size = rank, world_size
        self._perm_cache: dict[tuple[int, int], list[int]] = {}

    def _perm(self, d: int, epoch: int) -> list[int]:
        key = (d, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 4 * len(self.domains):
                self._perm_cache.clear()
            g = torch.Generator().manual_seed(mix(self.seed, d, epoch))
            self._perm_cache[key] = torch.randperm(len(self.domains[d]), generator=g).tolist()
        return self._perm_cache[key]

    def global_batch(self, step: int) -> list[tuple[int, int]]:
        out = []
        for d, members in enumerate(self.domains):
            n = len(members)
            for j in range(self.per_domain):
                if self.replacement:
                    idx = members[mix(self.seed, step, d, j, 2) % n]
                    out.append((idx, mix(self.seed, step, d, j, 1)))
                    continue
                pos = step * self.per_domain + j
                idx = members[self._perm(d, pos // n)[pos % n]]
                out.append((idx, mix(self.seed, step, d, j, 1)))
        return out

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This rank's share of the step's global batch: every world_size-th image from rank."""
        b = self.global_batch(step)
        if self.world_size == 1:
            return b
        return b[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.steps - self.start
