"""The --bad-images policy: 'fail' stops at the first unreadable image, naming it; 'skip' lists them."""

from __future__ import annotations

from ..errors import DataError

__all__ = ["BadImages"]


class BadImages:
    """Called with a batch's [(image index, reason), ...] as ``data.loading.collate`` reports them."""

    def __init__(self, policy: str, paths: list[str]):
        self.policy, self.paths, self.seen = policy, paths, {}

    def __call__(self, bad: list) -> None:
        for i, reason in bad:
            path = self.paths[i]
            if self.policy == "fail":
                raise DataError(f"{path}: unreadable image ({reason}); fix or remove it, or pass --bad-images skip")
            self.seen[path] = reason

    def items(self) -> list[tuple[str, str]]:
        return sorted(self.seen.items())

    def gather(self, dist) -> None:
        """Each rank skips images of its own share; afterwards every rank knows all of them (collective)."""
        for items in dist.all_gather_objects(self.items()) if dist.enabled else []:
            self.seen.update(dict(items))
