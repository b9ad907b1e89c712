"""Weight averaging of the trained tensors: Beta Moving Average, EMA, uniform, none.

Every scheme is an online weighted average of the weight trajectory theta_0..theta_T,
kept as ONE fp32 copy of the tracked tensors (the trainable parameters, plus the
module's floating-point buffers, e.g. BatchNorm statistics of ResNet towers; integer
buffers such as ``num_batches_tracked`` are counters, not weights, and keep their live
value). An update is one in-place ``torch._foreach_lerp_`` under no_grad:

    avg <- avg + w * (theta - avg),   w = alpha_t / A_t,   A_t = sum_{k<=t} alpha_k

which is Eq. 7: theta_bma_t = (A_{t-1}/A_t) theta_bma_{t-1} + (alpha_t/A_t) theta_t.

* BMA (Eq. 5-6): alpha_t = BetaPDF(beta, beta)((t + 0.5) / (T + 1)), t = 0..T; the
  pre-trained theta_0 is the first member with weight alpha_0.
* uniform (theta_AVG of Fig. 5): mean of theta_1..theta_T (theta_0 has weight 0).
* EMA: avg <- d * avg + (1 - d) * theta, from theta_0.
* none: no copy; the final weights are the result.

With ``every = k`` the average is updated every k steps (and at the last), and the
weights of the steps it skipped go to the step that updates, so BMA and uniform keep
their exact total weights; k = 1 is exact.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch

AVERAGERS = ("bma", "ema", "uniform", "none")


def beta_pdf(x: float, a: float, b: float) -> float:
    """Density of Beta(a, b) at 0 < x < 1 (log-gamma form, no scipy needed)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))


def beta_weights(total_steps: int, beta: float) -> list[float]:
    """alpha_t of Eq. 6 for t = 0..T: Beta(beta, beta) pdf at (t + 0.5) / (T + 1)."""
    T = total_steps
    return [beta_pdf((t + 0.5) / (T + 1), beta, beta) for t in range(T + 1)]


class WeightAverage:
    """Online weighted average of live tensors (theta_0 is their value at construction)."""

    name = "base"

    def __init__(self, tensors: Sequence[torch.Tensor], total_steps: int, every: int = 1):
        self.live = list(tensors)
        self.total_steps = int(total_steps)
        self.every = int(every)
        self.last_step = 0
        self.total_weight = self.member_weight(0)
        with torch.no_grad():
            self.average = [t.detach().clone(memory_format=torch.preserve_format).float() for t in self.live]

    # --- the scheme: weight of member t, and the lerp weight of a (covered) update
    def member_weight(self, t: int) -> float:
        raise NotImplementedError

    def lerp_weight(self, first: int, last: int) -> float:
        """Weight of theta_last standing for steps first..last; updates total_weight."""
        w = sum(self.member_weight(s) for s in range(first, last + 1))
        self.total_weight += w
        return w / self.total_weight if self.total_weight > 0 else 0.0

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total_steps

    @torch.no_grad()
    def update(self, step: int) -> bool:
        """Fold in the live tensors at step t (1..T); returns whether the average changed."""
        if not self.due(step) or step <= self.last_step:
            return False
        w = self.lerp_weight(self.last_step + 1, step)
        self.last_step = step
        if w == 0.0:
            return True
        live = [t if t.dtype == torch.float32 else t.float() for t in self.live]
        torch._foreach_lerp_(self.average, live, w)
        return True

    @torch.no_grad()
    def copy_to(self, tensors: Sequence[torch.Tensor] | None = None) -> None:
        """Write the average into the live tensors (or the given ones)."""
        dst = self.live if tensors is None else list(tensors)
        torch._foreach_copy_(dst, self.average)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Temporarily put the average into the model (zero-copy swap), e.g. to evaluate it."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self) -> None:
        for i, (t, a) in enumerate(zip(self.live, self.average)):
            if t.dtype != a.dtype:
                raise TypeError("swapped() needs fp32 live tensors; use copy_to()")
            t.data, self.average[i] = a, t.data

    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "last_step": self.last_step,
            "total_weight": self.total_weight,
            "average": [a.clone() for a in self.average],
        }

    def load_state_dict(self, state: dict) -> None:
        if state["name"] != self.name:
            raise ValueError(f"checkpoint holds a {state['name']} average, this run uses {self.name}")
        self.last_step = int(state["last_step"])
        self.total_weight = float(state["total_weight"])
        with torch.no_grad():
            torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])

    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() for a in self.average)


class BetaMovingAverage(WeightAverage):
    """BMA (Eq. 5-7): the pre-trained weights and the last steps weigh most when beta < 1."""

    name = "bma"

    def __init__(self, tensors, total_steps: int, beta: float, every: int = 1):
        self.beta = float(beta)
        self.alphas = beta_weights(total_steps, self.beta)
        super().__init__(tensors, total_steps, every)

    def member_weight(self, t: int) -> float:
        return self.alphas[t]


class UniformAverage(WeightAverage):
    """theta_AVG = mean of theta_1..theta_T (Fig. 5); theta_0 is not a member."""

    name = "uniform"

    def member_weight(self, t: int) -> float:
        return 0.0 if t == 0 else 1.0


class ExponentialMovingAverage(WeightAverage):
    """EMA from theta_0: avg <- d avg + (1 - d) theta; theta_0's share decays as d^T."""

    name = "ema"

    def __init__(self, tensors, total_steps: int, decay: float, every: int = 1):
        self.decay = float(decay)
        super().__init__(tensors, total_steps, every)

    def member_weight(self, t: int) -> float:
        return 1.0  # not used: EMA is not a normalised sum

    def lerp_weight(self, first: int, last: int) -> float:
        # k skipped steps with the same theta: avg <- d^k avg + (1 - d^k) theta.
        return 1.0 - self.decay ** (last - first + 1)


class NoAverage(WeightAverage):
    """No averaging: keeps no copy; the final weights are the result."""

    name = "none"

    def __init__(self, tensors, total_steps: int, every: int = 1):
        self.live = list(tensors)
        self.total_steps = int(total_steps)
        self.every = 1
        self.last_step = 0
        self.total_weight = 0.0
        self.average = []

    def update(self, step: int) -> bool:
        self.last_step = step
        return False

    def copy_to(self, tensors=None) -> None:
        if tensors is not None:
            with torch.no_grad():
                torch._foreach_copy_(list(tensors), self.live)

    def _swap(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"name": self.name, "last_step": self.last_step, "total_weight": 0.0, "average": []}

    def load_state_dict(self, state: dict) -> None:
        if state["name"] != self.name:
            raise ValueError(f"checkpoint holds a {state['name']} average, this run uses {self.name}")
        self.last_step = int(state["last_step"])


def build_averager(name: str, tensors, total_steps: int, *, beta: float = 0.5,
                   ema_decay: float = 0.999, every: int = 1) -> WeightAverage:
    """The averaging registry; ``tensors`` are the live trained tensors (theta_0 now)."""
    if name == "bma":
        return BetaMovingAverage(tensors, total_steps, beta, every)
    if name == "ema":
        return ExponentialMovingAverage(tensors, total_steps, ema_decay, every)
    if name == "uniform":
        return UniformAverage(tensors, total_steps, every)
    if name == "none":
        return NoAverage(tensors, total_steps)
    raise ValueError(f"unknown averaging {name!r}; known: {', '.join(AVERAGERS)}")


def averaged_tensors(module: torch.nn.Module, buffers: bool = True) -> list[torch.Tensor]:
    """The tensors an average tracks: trainable parameters, then (``buffers``) floating buffers.

    Buffers are BatchNorm statistics; when they are frozen (``--norm-layers frozen``) they never
    change, so they are not averaged as if they were weights."""
    params = [p for p in module.parameters() if p.requires_grad]
    extra = [b for b in module.buffers() if torch.is_floating_point(b)] if buffers else []
    return params + extra
