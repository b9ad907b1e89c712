"""Weight averaging of the trained tensors: Beta Moving Average, EMA, uniform, SWA, none.

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
* SWA from step K: mean of theta_K..theta_T.
* EMA: avg <- d * avg + (1 - d) * theta, from theta_0.
* none: no copy; the final weights are the result.

With ``every = k`` the average is updated every k steps (and at the last), and the
weights of the steps it skipped go to the step that updates, so BMA and uniform keep
their exact total weights; k = 1 is exact.

``half`` (``--average-precision fp16``, the official code's): the tensors it marks are
averaged as the official ``GeneralMovingAverage`` does on the fp16 weights of
``clip.model.convert_weights``: kept in fp16 and updated in fp16 arithmetic, in its order
of operations, avg <- (avg + r theta) / (1 + r) with r = alpha_t / A_{t-1} (the same Eq. 7);
the others as fp32.

``AVERAGERS`` is the registry (--averaging): each entry declares the parameters it reads, from which
the config's ``averaging`` section, --help and the docs are made (``registry``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Sequence

import torch

from .errors import ConfigError
from .registry import Entry, Param, Range, Registry

__all__ = ["AVERAGERS", "Averager", "BetaMovingAverage", "ExponentialMovingAverage", "NoAverage",
           "StochasticWeightAverage", "UniformAverage",
           "WeightAverage", "averaged_tensors", "beta_pdf", "beta_weights", "build_averager", "log_beta_pdf"]


def log_beta_pdf(x: float, a: float, b: float) -> float:
    """log of the Beta(a, b) density at 0 < x < 1 (log-gamma form, no scipy needed)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x)


def beta_pdf(x: float, a: float, b: float) -> float:
    """Density of Beta(a, b) at 0 < x < 1."""
    return math.exp(log_beta_pdf(x, a, b))


# Below this log weight the pdf values would leave the normal floats (beta -> 0: the normalising
# constant Gamma(2b) / Gamma(b)^2 ~ b/2 underflows, 5e-324 gives subnormal weights).
LOG_SMALLEST_EXACT = -300.0


def beta_weights(total_steps: int, beta: float) -> list[float]:
    """alpha_t of Eq. 6 for t = 0..T: Beta(beta, beta) pdf at (t + 0.5) / (T + 1).

    Computed in log space. Eq. 7 uses only ratios alpha_t / A_t, so where the pdf itself would underflow
    (beta below ~1e-130) the weights are the pdf divided by its largest value: the same average, exact,
    for every beta in the documented range 0 < beta <= 100."""
    T = total_steps
    logs = [log_beta_pdf((t + 0.5) / (T + 1), beta, beta) for t in range(T + 1)]
    top = max(logs)
    shift = top if top < LOG_SMALLEST_EXACT else 0.0
    return [math.exp(v - shift) for v in logs]


class WeightAverage:
    """Online weighted average of live tensors (theta_0 is their value at construction).

    A scheme is a pure ``fraction(first, last, total)``: the lerp weight of theta_last standing
    for steps first..last, given the weight sum so far, and the sum after. ``update`` is the one
    in-place step (timm's model_ema: get_decay / apply_update_)."""

    name: ClassVar[str]
    keeps_copy: ClassVar[bool] = True

    def __init__(self, tensors: Sequence[torch.Tensor], total_steps: int, every: int = 1,
                 half: Sequence[bool] | None = None):
        self.live = list(tensors)
        self.total_steps = int(total_steps)
        self.every = int(every)
        self.last_step = 0
        self.total_weight = self.initial_total()
        self.half = list(half) if half is not None and any(half) else []
        if self.half and len(self.half) != len(self.live):
            raise ValueError("half: one flag per averaged tensor")
        with torch.no_grad():
            self.average = [t.detach().clone(memory_format=torch.preserve_format).to(
                torch.float16 if self.half and self.half[i] else torch.float32)
                for i, t in enumerate(self.live)] if self.keeps_copy else []

    # --- the scheme (pure)
    def initial_total(self) -> float:
        return 0.0

    def fraction(self, first: int, last: int, total: float) -> tuple[float, float]:
        raise NotImplementedError

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total_steps

    # --- the in-place update
    @torch.no_grad()
    def update(self, step: int) -> bool:
        """Fold in the live tensors at step t (1..T); returns whether the average changed."""
        if not self.keeps_copy:
            self.last_step = step
            return False
        if not self.due(step) or step <= self.last_step:
            return False
        first, before = self.last_step + 1, self.total_weight
        w, self.total_weight = self.fraction(first, step, before)
        self.last_step = step
        if w == 0.0:
            return True
        if self.half:
            self._update_official(self.added(first, step), before)
            return True
        live = [t if t.dtype == torch.float32 else t.float() for t in self.live]
        torch._foreach_lerp_(self.average, live, w)
        return True

    def added(self, first: int, last: int) -> float:
        """The weight the steps first..last add (the official form needs it apart from the total)."""
        raise TypeError(f"--average-precision fp16 is the official BMA's form; it does not apply to {self.name}")

    def _update_official(self, added: float, before: float) -> None:
        """avg <- (avg + r theta) / (1 + r), r = added / before, each operation in the average's own dtype."""
        for i, (a, t) in enumerate(zip(self.average, self.live)):
            if before == 0.0:  # the first member (uniform's theta_1): the average is theta
                a.copy_(t)
                continue
            r = added / before
            a.copy_((a + r * t.to(a.dtype)) / (1 + r))

    @torch.no_grad()
    def copy_to(self, tensors: Sequence[torch.Tensor] | None = None) -> None:
        """Write the average (the live tensors, without a copy) into the live tensors or the given ones."""
        dst = self.live if tensors is None else list(tensors)
        src = self.average if self.keeps_copy else self.live
        if dst is not src:
            torch._foreach_copy_(dst, src)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Temporarily put the average into the model (zero-copy swap; a copy for fp16 averages), e.g. to
        evaluate it."""
        if self.half:
            with torch.no_grad():
                kept = [t.detach().clone() for t in self.live]
                self.copy_to()
            try:
                yield
            finally:
                with torch.no_grad():
                    torch._foreach_copy_(self.live, kept)
            return
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
        if self.average:
            with torch.no_grad():
                torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])

    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() for a in self.average)


class NormalisedAverage(WeightAverage):
    """sum_t alpha_t theta_t / sum_t alpha_t over the members so far (Eq. 7), from alpha_t = member_weight(t)."""

    def member_weight(self, t: int) -> float:
        raise NotImplementedError

    def initial_total(self) -> float:
        return self.member_weight(0)

    def fraction(self, first: int, last: int, total: float) -> tuple[float, float]:
        w = self.added(first, last)
        total = total + w
        return (w / total if total > 0 else 0.0), total

    def added(self, first: int, last: int) -> float:
        return sum(self.member_weight(s) for s in range(first, last + 1))


class BetaMovingAverage(NormalisedAverage):
    """BMA (Eq. 5-7): the pre-trained weights and the last steps weigh most when beta < 1."""

    name = "bma"

    def __init__(self, tensors, total_steps: int, beta: float, every: int = 1, half=None):
        self.beta = float(beta)
        self.alphas = beta_weights(total_steps, self.beta)
        super().__init__(tensors, total_steps, every, half)

    def member_weight(self, t: int) -> float:
        return self.alphas[t]


class UniformAverage(NormalisedAverage):
    """theta_AVG = mean of theta_1..theta_T (Fig. 5); theta_0 is not a member."""

    name = "uniform"

    def member_weight(self, t: int) -> float:
        return 0.0 if t == 0 else 1.0


class StochasticWeightAverage(NormalisedAverage):
    """SWA (Izmailov et al., UAI 2018) from step K: the uniform mean of theta_K..theta_T (K = 0 includes the
    pre-trained weights, K = 1 is the uniform average of Fig. 5)."""

    name = "swa"

    def __init__(self, tensors, total_steps: int, start: int, every: int = 1, half=None):
        if start > total_steps:
            raise ConfigError(f"--swa-start: {start} is beyond --steps {total_steps}: the average would have no "
                              f"member; give a step from 0 to {total_steps}")
        self.start = int(start)
        super().__init__(tensors, total_steps, every, half)

    def member_weight(self, t: int) -> float:
        return 1.0 if t >= self.start else 0.0


class ExponentialMovingAverage(WeightAverage):
    """EMA from theta_0: avg <- d avg + (1 - d) theta; theta_0's share decays as d^T."""

    name = "ema"

    def __init__(self, tensors, total_steps: int, decay: float, every: int = 1, half=None):
        self.decay = float(decay)
        super().__init__(tensors, total_steps, every, half)

    def fraction(self, first: int, last: int, total: float) -> tuple[float, float]:
        # k skipped steps with the same theta: avg <- d^k avg + (1 - d^k) theta.
        return 1.0 - self.decay ** (last - first + 1), total


class NoAverage(WeightAverage):
    """No averaging: keeps no copy; the final weights are the result."""

    name = "none"
    keeps_copy = False

    def __init__(self, tensors, total_steps: int, every: int = 1):
        super().__init__(tensors, total_steps, 1)

    def fraction(self, first: int, last: int, total: float) -> tuple[float, float]:
        return 0.0, total


@dataclass(frozen=True)
class Averager(Entry):
    """A weight-averaging scheme (--averaging): ``build(tensors, total_steps, half, **params)`` makes it over the
    live tensors (theta_0 now); ``half`` marks the tensors averaged in fp16 (None: all fp32)."""

    build: Callable[..., WeightAverage] = None


# The averaging schemes by name (--averaging), in the order --help and the docs list them.
AVERAGERS: Registry[Averager] = Registry("averaging", "averaging", "--averaging")

BETA = Param("beta", 0.5, "beta of the Beta(beta, beta) step weights (Eq. 6). Paper: 0.5.",
             within=Range(0, 100, lo_open=True, name="beta", note="paper: 0.5"),
             label="beta (Beta(beta, beta) step weights, Eq. 6)")
EMA_DECAY = Param("ema_decay", 0.999, "decay d of the exponential moving average, avg <- d avg + (1 - d) theta.",
                  within=Range(0, 1, lo_open=True, hi_open=True, name="decay"), label="EMA decay d")
EVERY = Param("every", 1, "update the average every k steps; the skipped steps' weights go to the step that "
                          "updates (exact when k = 1).", flag="average-every", within=Range(1), variant=False)
PRECISION = Param(
    "precision", "fp32",
    "number format of the average: 'fp32' (one fp32 copy, updated with one lerp) or 'fp16' (the official code's: "
    "the tensors it stores in fp16, Linear/Conv weights and CLIP's projection, are averaged in fp16 arithmetic as "
    "(avg + r theta) / (1 + r), r = alpha_t / A_(t-1); --profile official). fp16 rounds away steps smaller than a "
    "weight's fp16 spacing (docs/method.md).", flag="average-precision", choices=("fp32", "fp16"), variant=False)

AVERAGERS.add(Averager("bma", "Beta Moving Average (Eq. 5-7)", (BETA, EVERY, PRECISION),
                       build=lambda tensors, T, half, beta, every: BetaMovingAverage(tensors, T, beta, every, half)))
AVERAGERS.add(Averager("ema", "exponential moving average from theta_0", (EMA_DECAY, EVERY),
                       build=lambda tensors, T, half, ema_decay, every: ExponentialMovingAverage(tensors, T, ema_decay,
                                                                                                 every, half)))
AVERAGERS.add(Averager("uniform", "mean of theta_1..theta_T (Fig. 5)", (EVERY, PRECISION),
                       build=lambda tensors, T, half, every: UniformAverage(tensors, T, every, half)))
AVERAGERS.add(Averager("none", "no average: the final weights", build=lambda tensors, T, half: NoAverage(tensors, T)))
SWA_START = Param("swa_start", 1, "K, the first step whose weights the SWA average takes in: the mean of "
                                  "theta_K..theta_T (0 adds the pre-trained weights; 1 is the uniform average; "
                                  "SWA averages the last quarter or so).", within=Range(0, name="K"),
                  label="K (SWA from step K)")
AVERAGERS.add(Averager("swa", "stochastic weight averaging from step K: the mean of theta_K..theta_T",
                       (SWA_START, EVERY), build=lambda tensors, T, half, swa_start, every: StochasticWeightAverage(
                           tensors, T, swa_start, every, half)))


def build_averager(name: str, tensors, total_steps: int, *, fp16: Sequence[bool] | None = None,
                   **params) -> WeightAverage:
    """The averaging scheme ``name`` over the live tensors (theta_0 now), with its parameters by name (defaults for
    the others, e.g. ``beta=0.5``). With ``precision='fp16'`` the tensors ``fp16`` marks (default: all) are averaged
    in fp16, as the official code does for the tensors it stores in fp16."""
    args = AVERAGERS.arguments(name, params)
    half = None
    if args.pop("precision", "fp32") == "fp16":
        half = list(fp16) if fp16 is not None else [True] * len(list(tensors))
    return AVERAGERS[name].build(tensors, total_steps, half, **args)


def averaged_tensors(module: torch.nn.Module, buffers: bool = True) -> list[torch.Tensor]:
    """The tensors an average tracks: trainable parameters, then (``buffers``) floating buffers.

    Buffers are BatchNorm statistics; when they are frozen (``--norm-layers frozen``) they never
    change, so they are not averaged as if they were weights."""
    params = [p for p in module.parameters() if p.requires_grad]
    extra = [b for b in module.buffers() if torch.is_floating_point(b)] if buffers else []
    return params + extra
