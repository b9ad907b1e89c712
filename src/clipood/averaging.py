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
* SWAD (Cha et al., NeurIPS 2021): the uniform mean of the steps inside a window that the
  validation loss chooses (``LossValley``, the official rule): segments of k steps are averaged
  one by one; the window opens at the loss's first local minimum and closes where the loss
  leaves the valley. The loop tells it each segment's validation loss (``validation_every``).
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

__all__ = ["AVERAGERS", "Averager", "BetaMovingAverage", "DenseWeightAverage", "ExponentialMovingAverage",
           "LossValley", "NoAverage", "StochasticWeightAverage", "UniformAverage",
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
    validation_every: int = 0  # k > 0: the loop calls ``end_segment(step, validation loss)`` every k steps

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
            with self._copied_in(self.average):
                yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @contextlib.contextmanager
    def _copied_in(self, tensors: Sequence[torch.Tensor]) -> Iterator[None]:
        """The given tensors copied into the live ones, and the live values put back after."""
        with torch.no_grad():
            kept = [t.detach().clone() for t in self.live]
            torch._foreach_copy_(self.live, list(tensors))
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, kept)

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

    def summary(self) -> dict | None:
        """What results.json records about the average beyond its settings (SWAD: its window)."""
        return None


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


class LossValley:
    """SWAD's window rule on the validation losses of consecutive segments (the official ``LossValley``), as
    the segment ids the average takes in, in order. Pure: no tensors.

    Actions: ('start', s) sets the average to segment s with no member counted (the official
    ``AveragedModel(segment)``: the next 'add' replaces it), ('add', s) adds s as one member. The window
    opens when, of the last ``n_converge`` segments, the oldest has the lowest loss: it takes in the ones
    before it back to the last loss above the threshold mean(those n_converge losses) * (1 + ratio); after
    that, segment s is added ``n_tolerance - 1`` segments later if the lowest loss from s on is under the
    threshold, and the window closes (dead valley) the first time it is not."""

    def __init__(self, n_converge: int, n_tolerance: int, tolerance_ratio: float):
        self.n_converge, self.n_tolerance, self.ratio = int(n_converge), int(n_tolerance), float(tolerance_ratio)
        self.converge_q: list[tuple[int, float]] = []  # (segment, loss), the last n_converge
        self.smooth_q: list[tuple[int, float]] = []  # the last n_tolerance
        self.converged_at: int | None = None  # the segment where the loss converged
        self.threshold: float | None = None
        self.dead = False

    def observe(self, segment: int, loss: float) -> list[tuple[str, int]]:
        """The actions after segment ``segment`` ended with validation loss ``loss``."""
        if self.dead:
            return []
        for q, n in ((self.converge_q, self.n_converge), (self.smooth_q, self.n_tolerance)):
            q.append((segment, float(loss)))
            del q[:-n]
        if self.converged_at is None:
            return self._converge() if len(self.converge_q) == self.n_converge else []
        if self.smooth_q[0][0] < self.converged_at:
            return []
        if min(v for _, v in self.smooth_q) > self.threshold:
            self.dead = True
            return []
        return [("add", self.smooth_q[0][0])]

    def _converge(self) -> list[tuple[str, int]]:
        losses = [v for _, v in self.converge_q]
        if losses.index(min(losses)) != 0:
            return []
        first = self.converge_q[0][0]
        self.converged_at = first
        self.threshold = sum(losses) / len(losses) * (1.0 + self.ratio)
        actions = [("start", first)]
        if self.n_tolerance < self.n_converge:
            return actions + [("add", s) for s, _ in self.converge_q[1:1 + self.n_converge - self.n_tolerance]]
        if self.n_tolerance > self.n_converge:
            q = self.smooth_q[:self.n_tolerance - self.n_converge + 1]
            above = [i for i, (_, v) in enumerate(q) if v > self.threshold]
            start = above[-1] + 1 if above else 0
            actions += [("add", s) for s, _ in q[start + 1:]]
        return actions

    def finish(self) -> list[tuple[str, int]]:
        """The actions at the end of training: the segments still waiting whose losses stay in the valley."""
        if self.converged_at is None or self.dead:
            return []
        rest, actions = self.smooth_q[1:], []
        while rest and min(v for _, v in rest) <= self.threshold:
            actions.append(("add", rest.pop(0)[0]))
        return actions

    def state_dict(self) -> dict:
        return {"converge_q": self.converge_q, "smooth_q": self.smooth_q, "converged_at": self.converged_at,
                "threshold": self.threshold, "dead": self.dead}

    def load_state_dict(self, state: dict) -> None:
        self.converge_q = [(int(s), float(v)) for s, v in state["converge_q"]]
        self.smooth_q = [(int(s), float(v)) for s, v in state["smooth_q"]]
        self.converged_at, self.threshold, self.dead = state["converged_at"], state["threshold"], state["dead"]


class DenseWeightAverage(WeightAverage):
    """SWAD: every step's weights averaged into its segment of k steps (steps 1..k, k+1..2k, ...; the official
    code's first segment is its step 0 alone); each finished segment's mean waits, with its validation loss,
    until ``LossValley`` takes it in or lets it go; the result is the mean of the segments taken in, each one
    member as in the official code (which takes the segment where the loss converged in twice, and, when it
    converged within the first n_tolerance segments, a few others too; kept, so that the weights are the
    official rule's). Before the window opens the average is the live model; if it never opens,
    the result is the last segment's mean (the official code's choice). A last segment shorter than k is left
    out, as the official code never evaluates it."""

    name = "swad"

    def __init__(self, tensors, total_steps: int, segment: int, n_converge: int, n_tolerance: int,
                 tolerance_ratio: float):
        if total_steps < segment * n_converge:
            raise ConfigError(f"--averaging swad: its window opens after --swad-converge {n_converge} segments of "
                              f"--swad-segment {segment} steps, more than --steps {total_steps}; shorten the segment "
                              f"or train longer")
        super().__init__(tensors, total_steps, 1)
        self.validation_every = int(segment)
        self.valley = LossValley(n_converge, n_tolerance, tolerance_ratio)
        self.in_segment = 0  # steps in the running segment mean (``self.average``)
        self.waiting: dict[int, list[torch.Tensor]] = {}  # segment means the valley may still take (on the CPU)
        self.result: list[torch.Tensor] = []  # the window's mean so far
        self.members = 0  # segments in it
        self.window: list[int] = []  # the segments taken in (for the record)
        self.finished = False  # the end-of-training rule applied (once)

    def fraction(self, first: int, last: int, total: float) -> tuple[float, float]:
        # the running mean of the segment's steps; its first step has weight 1, which lerp makes an exact copy
        return 1.0 / (self.in_segment + 1), total

    def update(self, step: int) -> bool:
        changed = super().update(step)
        self.in_segment += changed
        return changed

    @torch.no_grad()
    def end_segment(self, step: int, val_loss: float) -> None:
        """Segment number step // k ended with the live model's validation loss ``val_loss``."""
        if step % self.validation_every:
            return  # a last, shorter segment: left out
        segment = step // self.validation_every
        self.waiting[segment] = [a.detach().cpu().clone() for a in self.average]
        self.in_segment = 0
        self._apply(self.valley.observe(segment, val_loss))

    def _apply(self, actions: list[tuple[str, int]]) -> None:
        for kind, s in actions:
            mean = self.waiting[s]
            if kind == "start" or self.members == 0:  # 'start' sets without counting; the first 'add' replaces
                self.result = [m.to(a.device).clone() for m, a in zip(mean, self.average)]
                self.members = 0 if kind == "start" else 1
                self.window = [s]
            else:
                self.members += 1
                torch._foreach_lerp_(self.result, [m.to(r.device) for m, r in zip(mean, self.result)],
                                     1.0 / self.members)
                self.window.append(s)
        keep = {s for s, _ in self.valley.converge_q + self.valley.smooth_q}
        self.waiting = {s: m for s, m in self.waiting.items() if s in keep}

    @torch.no_grad()
    def copy_to(self, tensors: Sequence[torch.Tensor] | None = None) -> None:
        """The window's mean into the live tensors (at the end: the waiting segments the valley still takes in
        first); if the loss never converged, the last segment's mean, with a warning."""
        dst = self.live if tensors is None else list(tensors)
        if not self.finished:
            self._apply(self.valley.finish())
            self.finished = True
        if not self.result:  # never converged: the last segment (there are n_converge or more)
            last = max(self.waiting)
            self.result = [m.to(a.device).clone() for m, a in zip(self.waiting[last], self.average)]
        torch._foreach_copy_(dst, self.result)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        if not self.result:  # no window yet: the live model stands for it
            yield
            return
        with self._copied_in(self.result):
            yield

    def state_dict(self) -> dict:
        return {**super().state_dict(), "in_segment": self.in_segment, "valley": self.valley.state_dict(),
                "waiting": {s: [m.clone() for m in ms] for s, ms in self.waiting.items()},
                "result": [r.detach().cpu().clone() for r in self.result], "members": self.members,
                "window": list(self.window)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.in_segment = int(state["in_segment"])
        self.valley.load_state_dict(state["valley"])
        self.waiting = {int(s): list(ms) for s, ms in state["waiting"].items()}
        self.result = [r.to(a.device) for r, a in zip(state["result"], self.average)]
        self.members, self.window = int(state["members"]), list(state["window"])

    def nbytes(self) -> int:
        return super().nbytes() * (2 + len(self.waiting))

    def summary(self) -> dict:
        k = self.validation_every
        steps = [(min(self.window) - 1) * k + 1, max(self.window) * k] if self.window else None
        return {"window_segments": list(self.window), "window_steps": steps, "segment_steps": k,
                "converged": self.valley.converged_at is not None, "valley_closed": self.valley.dead}


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

SWAD_SEGMENT = Param("swad_segment", 100, "k, the steps of one SWAD segment: the validation loss is measured every k "
                                          "steps (on the training domains' validation split) and each segment's mean "
                                          "enters the window as one member (the official checkpoint_freq: 100-300 by "
                                          "dataset).", within=Range(1, name="k"), label="k (SWAD segment steps)")
SWAD_CONVERGE = Param("swad_n_converge", 3, "SWAD's n_converge: the window opens when the oldest of the last n "
                                            "segments has the lowest validation loss (official: 3).",
                      within=Range(1, name="n"), flag="swad-converge", label="SWAD n_converge")
SWAD_TOLERANCE = Param("swad_n_tolerance", 6, "SWAD's n_tolerance: a segment is kept while the lowest loss of the n "
                                              "segments from it stays under the threshold (official: 6).",
                       within=Range(1, name="n"), flag="swad-tolerance", label="SWAD n_tolerance")
SWAD_RATIO = Param("swad_tolerance_ratio", 0.3, "SWAD's tolerance_ratio r: the threshold is the mean converged loss "
                                                "times (1 + r) (official: 0.3).",
                   within=Range(0, name="r"), flag="swad-ratio", label="SWAD tolerance ratio r")
AVERAGERS.add(Averager("swad", "SWAD: the dense average of the steps in the validation-loss valley (Cha et al. "
                               "2021; the official LossValley rule)",
                       (SWAD_SEGMENT, SWAD_CONVERGE, SWAD_TOLERANCE, SWAD_RATIO),
                       build=lambda tensors, T, half, swad_segment, swad_n_converge, swad_n_tolerance,
                       swad_tolerance_ratio: DenseWeightAverage(tensors, T, swad_segment, swad_n_converge,
                                                                swad_n_tolerance, swad_tolerance_ratio)))


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
