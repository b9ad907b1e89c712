"""Domain-balanced training batches as a pure function of (seed, step)."""

from __future__ import annotations

from collections import Counter

import pytest

from clipood.data.sampling import DomainBalancedBatches

# three domains of different sizes, with disjoint global image indices
DOMAINS = [list(range(0, 7)), list(range(100, 120)), list(range(200, 203))]
DOMAIN_OF = {i: d for d, members in enumerate(DOMAINS) for i in members}


def sampler(**kw) -> DomainBalancedBatches:
    args = dict(domains=DOMAINS, per_domain=4, steps=30, seed=0)
    args.update(kw)
    return DomainBalancedBatches(**args)


@pytest.mark.parametrize("per_domain", (1, 4, 12))
def test_every_step_draws_per_domain_images_from_every_domain(per_domain):
    s = sampler(per_domain=per_domain)
    batches = list(s)
    assert len(batches) == len(s) == 30
    for b in batches:
        assert len(b) == per_domain * len(DOMAINS)
        assert Counter(DOMAIN_OF[i] for i, _ in b) == {d: per_domain for d in range(len(DOMAINS))}


def test_each_domain_is_drawn_without_replacement_within_a_pass():
    """Consecutive draws walk through a permutation: every image once per pass."""
    s = sampler(per_domain=4, steps=60)
    streams = {d: [] for d in range(len(DOMAINS))}
    for b in s:
        for i, _ in b:
            streams[DOMAIN_OF[i]].append(i)
    for d, members in enumerate(DOMAINS):
        n = len(members)
        stream = streams[d]
        passes = [stream[k:k + n] for k in range(0, len(stream) - n + 1, n)]
        assert len(passes) >= 2
        for p in passes:
            assert sorted(p) == members
        assert len({tuple(p) for p in passes}) > 1  # a new order each pass


def test_deterministic_per_seed_and_step():
    a, b = list(sampler(seed=5)), list(sampler(seed=5))
    assert a == b
    assert a != list(sampler(seed=6))
    s = sampler(seed=5)
    assert [s.batch(t) for t in (17, 3, 17)] == [a[17], a[3], a[17]]  # any order, no hidden state


@pytest.mark.parametrize("start", (1, 5, 29))
def test_starting_at_a_step_reproduces_the_tail(start):
    full = list(sampler(seed=2))
    tail = list(sampler(seed=2, start=start))
    assert len(tail) == len(sampler(seed=2, start=start)) == 30 - start
    assert tail == full[start:]


def test_augmentation_seeds_differ_between_draws():
    seeds = [seed for b in sampler() for _, seed in b]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= x < 2 ** 63 for x in seeds)


def test_ranks_share_the_global_batch():
    full = sampler(per_domain=4)
    for step in (0, 7):
        parts = [sampler(per_domain=4, rank=r, world_size=3).batch(step) for r in range(3)]
        assert sorted(x for p in parts for x in p) == sorted(full.batch(step))
        assert [len(p) for p in parts] == [4, 4, 4]


def test_empty_domains_are_ignored():
    s = DomainBalancedBatches([[], [1, 2, 3], [], [7, 8]], per_domain=2, steps=3, seed=0)
    for b in s:
        assert Counter(i in (1, 2, 3) for i, _ in b) == {True: 2, False: 2}
