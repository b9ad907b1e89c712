"""Weight averages against brute-force weighted sums of every saved theta_t.

A simulated trajectory changes a small module's tensors in place each step (as an
optimizer does), the averager folds them in online, and every theta_t is saved as a
clone; the reference then sums the clones with the scheme's weights in float64:

* BMA (Eq. 5-7): weight of theta_t is scipy's Beta(beta, beta) pdf at (t + 0.5) / (T + 1).
* EMA: theta_0 weight d^T, theta_t weight (1 - d) d^(T - t).
* uniform: the mean of theta_1..theta_T.
"""

from __future__ import annotations

import io
import math

import pytest
import scipy.stats
import torch
from torch import nn

from clipood.averaging import (
    AVERAGERS,
    BetaMovingAverage,
    ExponentialMovingAverage,
    NoAverage,
    UniformAverage,
    averaged_tensors,
    beta_pdf,
    beta_weights,
    build_averager,
)
from clipood.errors import ConfigError

# The average is kept in fp32 (one copy); the reference is exact float64 arithmetic on
# the same fp32 snapshots, so the difference is fp32 rounding of O(1) values.
TOL = dict(rtol=0, atol=1e-6)


class Net(nn.Module):
    """Trainable weights, a frozen one, and a BatchNorm with float and integer buffers."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)
        self.bn = nn.BatchNorm1d(3)
        self.frozen = nn.Parameter(torch.zeros(2), requires_grad=False)


def make_net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def perturb(tensors, g: torch.Generator) -> None:
    """One 'optimizer step': an in-place random change of every tracked tensor."""
    with torch.no_grad():
        for t in tensors:
            t.add_(torch.randn(t.shape, generator=g) * 0.1)


def snapshot(tensors) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


def run(averager, tensors, T: int, seed: int = 0, start: int = 1, g=None):
    """Steps start..T; returns theta_{start-1}..theta_T (clones) and the update results."""
    g = g or torch.Generator().manual_seed(seed)
    saved, changed = [snapshot(tensors)], []
    for step in range(start, T + 1):
        perturb(tensors, g)
        changed.append(averager.update(step))
        saved.append(snapshot(tensors))
        if averager.validation_every and step % averager.validation_every == 0:  # SWAD: a segment's loss
            averager.end_segment(step, VALLEY[step // averager.validation_every % len(VALLEY)])
    return saved, changed


# A validation-loss curve with a valley (SWAD's window opens at its minimum and closes when it rises).
VALLEY = [3.0, 2.0, 1.5, 1.2, 1.0, 1.1, 1.05, 1.15, 1.2, 1.3, 2.5, 3.0]


def weighted_sum(saved, weights) -> list[torch.Tensor]:
    total = sum(weights)
    out = []
    for k in range(len(saved[0])):
        acc = torch.zeros(saved[0][k].shape, dtype=torch.float64)
        for w, theta in zip(weights, saved):
            acc += w * theta[k].double()
        out.append(acc / total)
    return out


def assert_average(averager, expected):
    assert len(averager.average) == len(expected)
    for a, e in zip(averager.average, expected):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), e, **TOL)


def update_steps(T: int, every: int) -> list[int]:
    """The steps at which an average with ``every`` updates: multiples of k, and T."""
    return [t for t in range(1, T + 1) if t % every == 0 or t == T]


def every_k_average(saved, T: int, every: int, weight) -> list[torch.Tensor]:
    """The average when only every k-th step (and T) updates, each update standing for the steps since the last:
    theta_0 with weight(0), then theta_u with the sum of weight(t) over the steps it stands for."""
    steps = update_steps(T, every)
    members = [saved[0]] + [saved[u] for u in steps]
    weights = [weight(0)] + [sum(weight(t) for t in range(p + 1, u + 1)) for p, u in zip([0] + steps, steps)]
    return weighted_sum(members, weights)


def scipy_alpha(t: int, T: int, beta: float) -> float:
    return float(scipy.stats.beta.pdf((t + 0.5) / (T + 1), beta, beta))


# --------------------------------------------------------------------- every = 1


@pytest.mark.parametrize("T", (1, 7, 50))
@pytest.mark.parametrize("beta", (0.1, 0.5, 1.0, 2.0))
def test_bma_is_the_beta_weighted_average_of_the_trajectory(beta, T):
    net = make_net(T)
    tensors = averaged_tensors(net)
    bma = build_averager("bma", tensors, T, beta=beta)
    assert isinstance(bma, BetaMovingAverage)
    saved, changed = run(bma, tensors, T, seed=int(beta * 10) + T)
    assert all(changed)
    assert_average(bma, weighted_sum(saved, [scipy_alpha(t, T, beta) for t in range(T + 1)]))


@pytest.mark.parametrize("T", (1, 7, 50))
@pytest.mark.parametrize("decay", (0.5, 0.9, 0.999))
def test_ema_matches_its_closed_form(decay, T):
    net = make_net(1)
    tensors = averaged_tensors(net)
    ema = build_averager("ema", tensors, T, ema_decay=decay)
    assert isinstance(ema, ExponentialMovingAverage)
    saved, _ = run(ema, tensors, T, seed=T)
    weights = [decay ** T] + [(1 - decay) * decay ** (T - t) for t in range(1, T + 1)]
    assert_average(ema, weighted_sum(saved, weights))


@pytest.mark.parametrize("T", (1, 7, 50))
def test_uniform_is_the_mean_of_theta_1_to_T(T):
    net = make_net(2)
    tensors = averaged_tensors(net)
    avg = build_averager("uniform", tensors, T)
    assert isinstance(avg, UniformAverage)
    saved, _ = run(avg, tensors, T, seed=T + 1)
    assert_average(avg, weighted_sum(saved[1:], [1.0] * T))


def test_no_average_keeps_no_copy_and_leaves_the_weights():
    net = make_net(3)
    tensors = averaged_tensors(net)
    none = build_averager("none", tensors, 5)
    assert isinstance(none, NoAverage)
    saved, changed = run(none, tensors, 5)
    assert none.average == [] and none.nbytes() == 0 and not any(changed)
    none.copy_to()
    with none.swapped():
        pass
    for t, s in zip(tensors, saved[-1]):
        assert torch.equal(t, s)
    out = [torch.zeros_like(t) for t in tensors]
    none.copy_to(out)
    assert all(torch.equal(o, s) for o, s in zip(out, saved[-1]))


# --------------------------------------------------------------------- every = k


@pytest.mark.parametrize("T,every", [(7, 2), (7, 3), (50, 4), (50, 7), (7, 10)])
@pytest.mark.parametrize("beta", (0.1, 0.5, 2.0))
def test_bma_every_k_gives_skipped_weights_to_the_updating_step(beta, T, every):
    net = make_net(4)
    tensors = averaged_tensors(net)
    bma = build_averager("bma", tensors, T, beta=beta, every=every)
    saved, changed = run(bma, tensors, T, seed=every)
    assert [s for s, c in zip(range(1, T + 1), changed) if c] == update_steps(T, every)
    assert_average(bma, every_k_average(saved, T, every, lambda t: scipy_alpha(t, T, beta)))


@pytest.mark.parametrize("T,every", [(7, 2), (50, 4), (50, 7)])
def test_uniform_every_k(T, every):
    net = make_net(5)
    tensors = averaged_tensors(net)
    avg = build_averager("uniform", tensors, T, every=every)
    saved, _ = run(avg, tensors, T, seed=every + 1)
    steps = update_steps(T, every)
    weights = [u - p for p, u in zip([0] + steps, steps)]
    assert sum(weights) == T
    assert_average(avg, weighted_sum([saved[u] for u in steps], weights))


@pytest.mark.parametrize("T,every", [(7, 2), (50, 4), (50, 7)])
@pytest.mark.parametrize("decay", (0.5, 0.9))
def test_ema_every_k_applies_k_decays_at_once(decay, T, every):
    """k steps with theta_u held: avg <- d^k avg + (1 - d^k) theta_u."""
    net = make_net(6)
    tensors = averaged_tensors(net)
    ema = build_averager("ema", tensors, T, ema_decay=decay, every=every)
    saved, _ = run(ema, tensors, T, seed=every + 2)
    steps = update_steps(T, every)
    members, weights = [saved[0]], [decay ** T]
    for p, u in zip([0] + steps, steps):
        members.append(saved[u])
        weights.append((1 - decay ** (u - p)) * decay ** (T - u))
    assert abs(sum(weights) - 1.0) < 1e-12
    assert_average(ema, weighted_sum(members, weights))


def test_repeated_or_late_updates_do_not_double_count():
    net = make_net(7)
    tensors = averaged_tensors(net)
    a = build_averager("bma", tensors, 4, beta=0.5)
    b_tensors = [t.detach().clone() for t in tensors]
    b = build_averager("bma", b_tensors, 4, beta=0.5)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 5):
        perturb(tensors, g)
        torch._foreach_copy_(b_tensors, [t.detach() for t in tensors])
        assert a.update(step)
        assert not a.update(step)  # a second call for the same step is ignored
        b.update(step)
    assert not a.update(2)  # an older step too
    assert all(torch.equal(x, y) for x, y in zip(a.average, b.average))


# ----------------------------------------------------------- what is tracked


def test_tracked_tensors_are_trainable_params_and_float_buffers():
    net = make_net()
    tracked = averaged_tensors(net)
    ids = {id(t) for t in tracked}
    assert ids == {id(net.fc.weight), id(net.fc.bias), id(net.bn.weight), id(net.bn.bias),
                   id(net.bn.running_mean), id(net.bn.running_var)}
    assert id(net.bn.num_batches_tracked) not in ids and id(net.frozen) not in ids


def test_buffers_are_averaged_and_integer_counters_keep_their_value():
    """BatchNorm statistics updated by forward passes are averaged like the weights."""
    T = 6
    net = make_net(8)
    tensors = averaged_tensors(net)
    bma = build_averager("bma", tensors, T, beta=0.5)
    saved = [snapshot(tensors)]
    g = torch.Generator().manual_seed(3)
    net.train()
    for step in range(1, T + 1):
        net.bn(torch.randn(16, 3, generator=g) * step)  # moves running_mean / running_var in place
        perturb([net.fc.weight, net.fc.bias], g)
        bma.update(step)
        saved.append(snapshot(tensors))
    assert int(net.bn.num_batches_tracked) == T
    assert_average(bma, weighted_sum(saved, [scipy_alpha(t, T, 0.5) for t in range(T + 1)]))
    bma.copy_to()
    assert int(net.bn.num_batches_tracked) == T  # the counter is not averaged
    assert torch.equal(net.bn.running_mean, bma.average[4])


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("name", ("bma", "ema", "uniform"))
def test_memory_is_one_fp32_copy(name):
    net = make_net()
    tensors = averaged_tensors(net)
    avg = build_averager(name, tensors, 10)
    assert avg.nbytes() == 4 * sum(t.numel() for t in tensors)
    half = [t.detach().to(torch.bfloat16) for t in tensors]
    assert build_averager(name, half, 10).nbytes() == 4 * sum(t.numel() for t in tensors)


# ---------------------------------------------------------------- resuming


@pytest.mark.parametrize("every", (1, 3))
@pytest.mark.parametrize("name", AVERAGERS)
def test_state_dict_round_trip_mid_trajectory_is_bit_exact(name, every):
    T, mid = 20, 8
    kw = dict(beta=0.3, ema_decay=0.8, every=every, swad_segment=every, swad_n_converge=2, swad_n_tolerance=3)
    net_a = make_net(9)
    a_tensors = averaged_tensors(net_a)
    kw = {k: v for k, v in kw.items() if k in AVERAGERS[name].param_names()}
    a = build_averager(name, a_tensors, T, **kw)
    g = torch.Generator().manual_seed(1)
    run(a, a_tensors, mid, g=g)

    buf = io.BytesIO()
    torch.save({"avg": a.state_dict(), "live": snapshot(a_tensors)}, buf)
    buf.seek(0)
    state = torch.load(buf)
    net_b = make_net(10)  # different init: everything must come from the checkpoint
    b_tensors = averaged_tensors(net_b)
    with torch.no_grad():
        torch._foreach_copy_(b_tensors, state["live"])
    b = build_averager(name, b_tensors, T, **kw)
    b.load_state_dict(state["avg"])

    g_b = torch.Generator()
    g_b.set_state(g.get_state())
    run(a, a_tensors, T, start=mid + 1, g=g)
    run(b, b_tensors, T, start=mid + 1, g=g_b)
    assert a.last_step == b.last_step == T
    for x, y in zip(a.average, b.average):
        assert torch.equal(x, y)
    a.copy_to()
    b.copy_to()
    for x, y in zip(a_tensors, b_tensors):
        assert torch.equal(x, y)


def test_loading_another_scheme_is_refused():
    tensors = averaged_tensors(make_net())
    state = build_averager("ema", tensors, 5).state_dict()
    with pytest.raises(ValueError, match="ema average, this run uses bma"):
        build_averager("bma", tensors, 5).load_state_dict(state)


def test_unknown_averaging_name_and_parameter():
    with pytest.raises(ConfigError, match=r"--averaging: unknown averaging 'median'.*bma.*ema.*uniform.*none"):
        build_averager("median", averaged_tensors(make_net()), 5)
    with pytest.raises(ConfigError, match=r"--averaging ema: takes no parameter 'beta'"):
        build_averager("ema", averaged_tensors(make_net()), 5, beta=0.5)  # never ignored


# ------------------------------------------------------------------ swapping


def test_swapped_puts_the_average_in_and_restores_live_weights_exactly():
    net = make_net(11)
    tensors = averaged_tensors(net)
    bma = build_averager("bma", tensors, 5, beta=0.5)
    run(bma, tensors, 5)
    live_before = snapshot(tensors)
    avg_before = snapshot(bma.average)
    x = torch.randn(4, 5)
    with bma.swapped():
        for t, a in zip(tensors, avg_before):
            assert torch.equal(t, a)
        torch.testing.assert_close(net.fc(x), x @ avg_before[0].T + avg_before[1])  # the module runs on it
    for t, s in zip(tensors, live_before):
        assert torch.equal(t, s)
    for a, s in zip(bma.average, avg_before):
        assert torch.equal(a, s)
    # the swap is undone on an exception too
    with pytest.raises(RuntimeError):
        with bma.swapped():
            raise RuntimeError("evaluation failed")
    assert all(torch.equal(t, s) for t, s in zip(tensors, live_before))
    assert all(torch.equal(a, s) for a, s in zip(bma.average, avg_before))


def test_copy_to_writes_the_average():
    net = make_net(12)
    tensors = averaged_tensors(net)
    avg = build_averager("uniform", tensors, 3)
    saved, _ = run(avg, tensors, 3)
    avg.copy_to()
    expected = weighted_sum(saved[1:], [1.0, 1.0, 1.0])
    for t, e in zip(tensors, expected):
        torch.testing.assert_close(t.detach().double(), e, **TOL)


# ------------------------------------------------------------------- weights


@pytest.mark.parametrize("a,b", [(0.1, 0.1), (0.5, 0.5), (1.0, 1.0), (2.0, 2.0), (0.5, 3.0), (7.0, 1.5)])
def test_beta_pdf_matches_scipy(a, b):
    for x in (1e-4, 0.01, 0.1, 0.25, 0.5, 0.77, 0.99, 1 - 1e-4):
        assert beta_pdf(x, a, b) == pytest.approx(float(scipy.stats.beta.pdf(x, a, b)), rel=1e-10)


@pytest.mark.parametrize("T", (1, 7, 5000))
@pytest.mark.parametrize("beta", (0.1, 0.5, 1.0, 2.0))
def test_beta_weights_are_eq6(beta, T):
    w = beta_weights(T, beta)
    assert len(w) == T + 1
    ref = scipy.stats.beta.pdf([(t + 0.5) / (T + 1) for t in range(T + 1)], beta, beta)
    assert w == pytest.approx(ref.tolist(), rel=1e-10)
    assert w == pytest.approx(w[::-1], rel=1e-12)  # symmetric: theta_0 weighs as much as theta_T


# ------------------------------------------------------------------- issue 23: every documented beta is exact


def _normalised(w):
    s = sum(w)
    return [x / s for x in w]


@pytest.mark.parametrize("T", (1, 12, 5000))
def test_tiny_betas_give_the_limit_weights_not_subnormal_ones_case11(T):
    """As beta -> 0 the normalised weights tend to 1 / (x (1 - x)); 5e-324 (inside 0 < beta <= 100) must give
    them, as 1e-10 does, not the rounding of subnormal pdf values."""
    limit = _normalised([1.0 / (x * (1 - x)) for x in ((t + 0.5) / (T + 1) for t in range(T + 1))])
    for beta in (1e-10, 1e-100, 1e-200, 1e-300, 5e-324):
        w = beta_weights(T, beta)
        assert all(math.isfinite(x) and x >= 2.2250738585072014e-308 for x in w), beta  # normal floats
        assert _normalised(w) == pytest.approx(limit, rel=1e-8), beta


def test_the_documented_beta_range_keeps_finite_weights_at_both_ends_case11():
    for beta in (5e-324, 1e-5, 0.5, 1.0, 10.0, 100.0):
        w = beta_weights(5000, beta)
        assert all(math.isfinite(x) and x >= 0.0 for x in w) and max(w) > 0, beta
        ref = scipy.stats.beta.pdf([(t + 0.5) / 5001 for t in range(5001)], beta, beta)
        if beta >= 1e-5:  # where the pdf itself is a normal float, the weights are the pdf (Eq. 6)
            assert w == pytest.approx(ref.tolist(), rel=1e-9, abs=1e-300)


def test_bma_with_beta_5e_324_is_the_average_with_beta_1e_12_case11():
    runs = {}
    for beta in (5e-324, 1e-12):
        net = make_net(3)
        tensors = averaged_tensors(net)
        bma = build_averager("bma", tensors, 6, beta=beta)
        runs[beta], _ = run(bma, tensors, 6)
        bma.copy_to()
        runs[beta] = [t.detach().clone() for t in tensors]
    for a, b in zip(runs[5e-324], runs[1e-12]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ SWA from step K (--averaging swa)


@pytest.mark.parametrize("T,start", [(1, 0), (1, 1), (7, 0), (7, 3), (7, 7), (50, 38)])
def test_swa_is_the_mean_of_the_saved_weights_from_step_k(T, start):
    net = make_net(11)
    tensors = averaged_tensors(net)
    swa = build_averager("swa", tensors, T, swa_start=start)
    saved, changed = run(swa, tensors, T, seed=T + start)
    assert changed == [True] * T
    # brute force: the saved theta_K..theta_T, summed in float64 and divided by their number
    expected = [sum(s[k].double() for s in saved[start:]) / (T + 1 - start) for k in range(len(tensors))]
    assert_average(swa, expected)
    swa.copy_to()
    for t, e in zip(tensors, expected):
        torch.testing.assert_close(t.double(), e, **TOL)


def test_swa_from_step_one_is_the_uniform_average():
    T = 9
    a_tensors, b_tensors = averaged_tensors(make_net(12)), averaged_tensors(make_net(12))
    swa, uniform = build_averager("swa", a_tensors, T, swa_start=1), build_averager("uniform", b_tensors, T)
    run(swa, a_tensors, T, seed=5)
    run(uniform, b_tensors, T, seed=5)
    for x, y in zip(swa.average, uniform.average):
        assert torch.equal(x, y)


@pytest.mark.parametrize("T,start,every", [(10, 4, 3), (50, 20, 7), (7, 0, 2)])
def test_swa_every_k_gives_skipped_weights_to_the_updating_step(T, start, every):
    net = make_net(13)
    tensors = averaged_tensors(net)
    swa = build_averager("swa", tensors, T, swa_start=start, every=every)
    saved, _ = run(swa, tensors, T, seed=every)
    assert_average(swa, every_k_average(saved, T, every, lambda t: 1.0 if t >= start else 0.0))


def test_swa_start_beyond_the_steps_is_refused_and_the_option_is_everywhere(tmp_path, shapes_root):
    """From its registry entry alone: --averaging swa and --swa-start in --help and docs/configuration.md, and a
    sweep's grid over --swa-start gives one run per value for a method that reads it, one for one that does not."""
    from clipood.config import Config, irrelevant_keys
    from registry_checks import assert_documented, sweep_runs
    with pytest.raises(ConfigError, match=r"--swa-start: 6 is beyond --steps 5"):
        build_averager("swa", averaged_tensors(make_net()), 5, swa_start=6)
    assert_documented("swa", "swa-start", "`averaging.swa_start` | `--swa-start` | `1`")
    cfg = Config()
    cfg.averaging.name = "swa"
    assert "averaging.swa_start" not in irrelevant_keys(cfg) and "averaging.beta" in irrelevant_keys(cfg)

    runs = sweep_runs(tmp_path, shapes_root, ["clipood", "clipood-ema"], {"clipood": {"averaging": {"name": "swa"}}},
                      {"swa-start": [2, 4]})
    assert [(n, c.averaging.swa_start) for n, c in runs["clipood"]] == [("d-clipood-sketch-swa-start2-seed0", 2),
                                                                       ("d-clipood-sketch-swa-start4-seed0", 4)]
    assert [n for n, _ in runs["clipood-ema"]] == ["d-clipood-ema-sketch-seed0"]  # EMA reads no K: one run


# ---------------------------------------------------------------- SWAD (LossValley)


class _Segment:
    """A segment of the official code's trajectory: its weights are a one-hot vector over segments, so the final
    average's entries are each segment's weight in it."""

    def __init__(self, index: int, count: int, loss: float):
        self.params = [1.0 if i == index else 0.0 for i in range(count)]
        self.end_step, self.end_loss = index, loss


class _Averaged:
    """swa_utils.AveragedModel of the official repository (khanrc/swad), written out: a copy of the model with
    n_averaged = 0, whose first update replaces it and later ones take running means."""

    def __init__(self, segment):
        self.params, self.n = list(segment.params), 0

    def update(self, segment):
        if self.n == 0:
            self.params = list(segment.params)
        else:
            self.params = [a + (b - a) / (self.n + 1) for a, b in zip(self.params, segment.params)]
        self.n += 1


def _official_loss_valley(losses, n_converge, n_tolerance, ratio):
    """domainbed/swad.py LossValley (update_and_evaluate per segment, then get_final_model), written out over
    one-hot segments; returns the final weights per segment, or None where it never converged (the official code
    then returns the last segment)."""
    from collections import deque
    count = len(losses)
    converge_q, smooth_q = deque(maxlen=n_converge), deque(maxlen=n_tolerance)
    final, converge_step, dead, threshold = None, None, False, None
    for i, loss in enumerate(losses):
        if dead:
            break
        seg = _Segment(i, count, loss)
        converge_q.append(seg)
        smooth_q.append(seg)
        if converge_step is None:
            if len(converge_q) < n_converge:
                continue
            min_idx = min(range(len(converge_q)), key=lambda j: converge_q[j].end_loss)  # np.argmin: first min
            if min_idx == 0:
                converge_step = converge_q[0].end_step
                final = _Averaged(converge_q[0])
                threshold = sum(s.end_loss for s in converge_q) / n_converge * (1.0 + ratio)
                if n_tolerance < n_converge:
                    for j in range(n_converge - n_tolerance):
                        final.update(converge_q[1 + j])
                elif n_tolerance > n_converge:
                    q = list(smooth_q)[: n_tolerance - n_converge + 1]
                    start_idx = 0
                    for j in reversed(range(len(q))):
                        if q[j].end_loss > threshold:
                            start_idx = j + 1
                            break
                    for s in q[start_idx + 1:]:
                        final.update(s)
            continue
        if smooth_q[0].end_step < converge_step:
            continue
        if min(s.end_loss for s in smooth_q) > threshold:
            dead = True
            continue
        final.update(smooth_q[0])
    if converge_step is None:
        return None
    if not dead:
        smooth_q.popleft()
        while smooth_q:
            if min(s.end_loss for s in smooth_q) > threshold:
                break
            final.update(smooth_q.popleft())
    return final.params


def _clipood_swad(losses, n_converge, n_tolerance, ratio, k=1):
    """clipood's DenseWeightAverage over a scalar whose value at step t is its segment's number: the average is
    then each segment's weight, read back through one-hot vectors."""
    count = len(losses)
    value = torch.zeros(count)
    avg = build_averager("swad", [value], count * k, swad_segment=k, swad_n_converge=n_converge,
                         swad_n_tolerance=n_tolerance, swad_tolerance_ratio=ratio)
    for step in range(1, count * k + 1):
        with torch.no_grad():
            value.zero_()
            value[(step - 1) // k] = 1.0
        avg.update(step)
        if step % k == 0:
            avg.end_segment(step, losses[step // k - 1])
    out = torch.zeros(count)
    avg.copy_to([out])
    return avg, out


VALLEYS = {
    "valley": [3.0, 2.0, 1.5, 1.2, 1.0, 1.1, 1.05, 1.15, 1.2, 1.3, 2.5, 3.0, 3.2, 3.5],
    "early minimum": [1.0, 1.2, 1.3, 1.1, 1.0, 1.05, 1.2, 1.25, 1.3, 1.2, 1.1, 1.0],
    "rising": [1.0, 1.1, 1.2, 1.4, 1.8, 2.5, 3.0, 4.0, 5.0],
    "falling": [5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.2, 1.1, 1.0],
    "late valley": [4.0, 3.0, 2.5, 2.2, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.45, 1.5, 1.46, 2.6, 2.7],
}


@pytest.mark.parametrize("k", (1, 3))
@pytest.mark.parametrize("shape", (
    (3, 6, 0.3),  # the official defaults
    (3, 3, 0.3), (4, 2, 0.1), (2, 5, 0.5), (3, 6, 0.0)))
@pytest.mark.parametrize("curve", VALLEYS)
def test_swad_window_and_weights_equal_the_official_rule(curve, shape, k):
    losses = VALLEYS[curve]
    want = _official_loss_valley(losses, *shape)
    avg, got = _clipood_swad(losses, *shape, k=k)
    if want is None:  # never converged: the official code returns the last segment
        want = [0.0] * (len(losses) - 1) + [1.0]
        assert not avg.summary()["converged"]
    assert got.tolist() == pytest.approx(want, abs=1e-6)


def test_swad_on_random_curves_equals_the_official_rule():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(4, 30, (1,), generator=g))
        losses = (torch.rand(n, generator=g) * 2 + torch.linspace(1, 0, n) ** 2).tolist()
        shape = (int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 8, (1,), generator=g)), 0.2)
        want = _official_loss_valley(losses, *shape)
        _, got = _clipood_swad(losses, *shape)
        want = want if want is not None else [0.0] * (n - 1) + [1.0]
        assert got.tolist() == pytest.approx(want, abs=1e-6), (trial, losses, shape)


def test_swad_averages_each_steps_weights_within_a_segment():
    """Segment means are exact running means of their k steps; each time a segment enters the window (the official
    rule takes the segment where the loss converged twice) its k steps weigh alike."""
    losses = VALLEYS["valley"]
    k, count = 4, len(losses)
    x = torch.zeros(3)
    avg = build_averager("swad", [x], k * count, swad_segment=k)
    seen = []
    g = torch.Generator().manual_seed(5)
    for step in range(1, k * count + 1):
        with torch.no_grad():
            x.copy_(torch.randn(3, generator=g))
        seen.append(x.clone())
        avg.update(step)
        if step % k == 0:
            avg.end_segment(step, losses[step // k - 1])
    out = torch.zeros(3)
    avg.copy_to([out])
    window = avg.summary()["window_segments"]
    assert window == [5, 5, 6, 7, 8, 9, 10]  # converged at 5 (1.0, 1.1, 1.05: threshold 1.365); 11 on stay above it
    assert avg.summary()["window_steps"] == [(5 - 1) * k + 1, 10 * k]
    members = [seen[(s - 1) * k + j] for s in window for j in range(k)]
    assert torch.allclose(out, torch.stack(members).mean(0), atol=1e-6)


def test_swad_refuses_fewer_steps_than_its_window_needs():
    with pytest.raises(ConfigError, match=r"--averaging swad: .*--swad-converge 3 segments of --swad-segment 100 steps"
                                          r", more than --steps 250"):
        build_averager("swad", [torch.zeros(2)], 250)
