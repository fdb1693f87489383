"""Learning-rate schedules: hand-checkable values, invariants, the LRScheduler protocol and its
state, and step-by-step agreement with torch.optim.lr_scheduler."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minroots
from minroots.optim import (
    SGD,
    AdamW,
    ConstantSchedule,
    CosineSchedule,
    InverseSqrtSchedule,
    LinearSchedule,
    LRScheduler,
    get_schedule,
)


def values(schedule, n):
    return [schedule.lr_at(s) for s in range(n)]


def make_opt(n_groups=1, lr=1.0):
    groups = [{"params": [minroots.tensor([0.0], requires_grad=True)]} for _ in range(n_groups)]
    return SGD(groups, lr=lr)


# ----------------------------------------------------------------------------- hand examples


@pytest.mark.task5_2
def test_constant_with_warmup_by_hand():
    assert values(ConstantSchedule(0.1, warmup_steps=4), 6) == pytest.approx(
        [0.02, 0.04, 0.06, 0.08, 0.1, 0.1], rel=1e-15
    )
    assert values(ConstantSchedule(0.1), 3) == [0.1, 0.1, 0.1]


@pytest.mark.task5_2
def test_cosine_by_hand():
    c = math.cos(math.pi / 4)
    expected = [1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, 0.0, 0.0]
    assert values(CosineSchedule(1.0, total_steps=4), 7) == pytest.approx(expected, abs=1e-15)
    # warmup 2 reaches the peak at step 2; floor min_lr from total_steps on
    s = CosineSchedule(1.0, total_steps=6, warmup_steps=2, min_lr=0.2)
    assert values(s, 8) == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 0.2 + 0.8 * (1 + c) / 2, 0.6, 0.2 + 0.8 * (1 - c) / 2, 0.2, 0.2],
        abs=1e-15,
    )


@pytest.mark.task5_2
def test_linear_by_hand():
    assert values(LinearSchedule(1.0, total_steps=4), 6) == pytest.approx(
        [1.0, 0.75, 0.5, 0.25, 0.0, 0.0], abs=1e-15
    )
    s = LinearSchedule(2.0, total_steps=3, warmup_steps=1, min_lr=1.0)
    assert values(s, 5) == pytest.approx([1.0, 2.0, 1.5, 1.0, 1.0], abs=1e-15)


def test_inverse_sqrt_by_hand_and_paper_formula():
    s = InverseSqrtSchedule(1.0, warmup_steps=4)
    assert values(s, 6) == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, math.sqrt(4 / 5), math.sqrt(4 / 6)], rel=1e-15
    )
    noam = InverseSqrtSchedule.noam(d_model=512, warmup_steps=4000)
    for step in [0, 1, 100, 3998, 3999, 4000, 10_000, 100_000]:
        n = step + 1  # the paper's step_num counts from 1
        paper = 512**-0.5 * min(n**-0.5, n * 4000**-1.5)
        assert noam.lr_at(step) == pytest.approx(paper, rel=1e-13)
    assert noam.lr_at(3999) == pytest.approx(7e-4, rel=0.02)  # the peak the paper's plot shows


# ----------------------------------------------------------------------------- invariants


@pytest.mark.task5_2
@given(
    st.sampled_from(["cosine", "linear"]),
    st.floats(1e-5, 10),
    st.floats(0, 1),
    st.integers(0, 50),
    st.integers(1, 200),
)
def test_decays_are_bounded_and_monotone_after_warmup(name, lr, ratio, warmup, decay):
    s = get_schedule(
        name, lr=lr, total_steps=warmup + decay, warmup_steps=warmup, min_lr=lr * ratio
    )
    lrs = np.array(values(s, warmup + decay + 5))
    assert np.all(np.diff(lrs[: warmup + 1]) > 0)  # warmup ramps up to the peak at step W
    assert lrs[warmup] == pytest.approx(lr, rel=1e-12)
    assert np.all(np.diff(lrs[warmup:]) <= 1e-15 * lr)  # then never increases
    assert np.all(lrs[warmup:] >= lr * ratio) and np.all(lrs <= lr * (1 + 1e-12))
    assert np.all(lrs[warmup + decay :] == lr * ratio)  # exactly the floor from total_steps on


@given(st.floats(1e-5, 1), st.integers(1, 100))
def test_inverse_sqrt_peaks_at_warmup(lr, warmup):
    s = InverseSqrtSchedule(lr, warmup)
    lrs = values(s, 3 * warmup)
    assert int(np.argmax(lrs)) == warmup - 1 and max(lrs) == pytest.approx(lr)
    assert s.lr_at(4 * warmup - 1) == pytest.approx(lr / 2)  # 1/sqrt decay: 4x steps, half lr


def test_config_round_trip_and_factory():
    for s in [
        ConstantSchedule(0.1, 3),
        CosineSchedule(6e-4, 5000, 100, 6e-5),
        LinearSchedule(1e-3, 10),
        InverseSqrtSchedule.noam(64, 10),
    ]:
        config = json.loads(json.dumps(s.config()))
        assert get_schedule(**config) == s
    assert get_schedule("noam", d_model=512, warmup_steps=4000).lr == pytest.approx(
        512**-0.5 * 4000**-0.5
    )


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        get_schedule("exponential", lr=1.0)
    with pytest.raises(TypeError, match="cosine"):
        get_schedule("cosine", lr=1.0)  # total_steps missing
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        CosineSchedule(-1.0, 10)
    with pytest.raises(ValueError, match="total_steps must be an integer >= 11"):
        CosineSchedule(1.0, 10, warmup_steps=10)
    with pytest.raises(ValueError, match="min_lr must be <= lr"):
        LinearSchedule(1.0, 10, min_lr=2.0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 1"):
        InverseSqrtSchedule(1.0, 0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        ConstantSchedule(1.0, warmup_steps=2.5)
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        ConstantSchedule(1.0).lr_at(-1)


# ----------------------------------------------------------------------------- LRScheduler


def test_scheduler_drives_every_group():
    opt = make_opt(n_groups=2)
    opt.param_groups[1]["lr_scale"] = 0.5
    sched = LRScheduler(opt, LinearSchedule(1.0, total_steps=4))
    seen = [sched.get_last_lr()]
    for _ in range(5):
        opt.step()
        sched.step()
        seen.append(sched.get_last_lr())
    expected = [[1.0, 0.5], [0.75, 0.375], [0.5, 0.25], [0.25, 0.125], [0.0, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(seen, expected, atol=1e-15)
    assert opt.param_groups[0]["lr"] == 0.0 and sched.last_step == 5


def test_scheduler_accepts_a_plain_function():
    opt = make_opt()
    sched = LRScheduler(opt, lambda step: 0.1 * 0.5**step)
    sched.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert sched.state_dict() == {"last_step": 2, "schedule": None}


def test_scheduler_state_round_trip():
    schedule = CosineSchedule(1.0, total_steps=20, warmup_steps=3, min_lr=0.1)
    opt = make_opt()
    sched = LRScheduler(opt, schedule)
    for _ in range(7):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    expected = [schedule.lr_at(s) for s in range(7, 12)]

    opt2 = make_opt()
    sched2 = LRScheduler(opt2, schedule)
    sched2.load_state_dict(state)
    got = [opt2.param_groups[0]["lr"]]
    for _ in range(4):
        sched2.step()
        got.append(opt2.param_groups[0]["lr"])
    assert got == expected  # exactly

    with pytest.raises(ValueError, match="saved with schedule"):
        LRScheduler(make_opt(), LinearSchedule(1.0, 20)).load_state_dict(state)
    with pytest.raises(ValueError, match="'last_step'"):
        sched2.load_state_dict({})


def test_scheduler_lr_survives_optimizer_state_round_trip():
    opt = AdamW([minroots.tensor([1.0], requires_grad=True)], lr=1.0)
    sched = LRScheduler(opt, LinearSchedule(1.0, total_steps=10))
    for _ in range(3):
        sched.step()
    opt2 = AdamW([minroots.tensor([1.0], requires_grad=True)], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.7)


def test_scheduler_bad_input():
    with pytest.raises(TypeError, match="optimizer must be"):
        LRScheduler(object(), ConstantSchedule(1.0))
    with pytest.raises(TypeError, match="schedule must be"):
        LRScheduler(make_opt(), 0.1)
    with pytest.raises(ValueError, match="lr=-1.0 at step 0"):
        LRScheduler(make_opt(), lambda step: -1.0)


# ----------------------------------------------------------------------------- torch parity


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def lrs(opt, sched, n):
    """The learning rates of the first n optimizer steps, stepping as torch's protocol says (the
    scheduler after the optimizer); the same loop drives torch and minroots."""
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def torch_lrs(torch, make_scheduler, n, lr=1.0):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    return lrs(opt, make_scheduler(opt), n)


def our_lrs(schedule, n, lr=1.0):
    opt = make_opt(lr=lr)
    return lrs(opt, LRScheduler(opt, schedule), n)


SCHEDULES = [
    ConstantSchedule(0.5),
    ConstantSchedule(0.5, warmup_steps=10),
    CosineSchedule(0.5, total_steps=100, warmup_steps=10, min_lr=0.05),
    CosineSchedule(0.5, total_steps=60),
    LinearSchedule(0.5, total_steps=100, warmup_steps=10, min_lr=0.1),
    LinearSchedule(0.5, total_steps=80),
    InverseSqrtSchedule(0.5, warmup_steps=10),
    InverseSqrtSchedule.noam(d_model=64, warmup_steps=25, factor=2.0),
]


@pytest.mark.parity
@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_same_as_torch_lambda_lr_bit_for_bit(torch, schedule):
    n = 120
    theirs = torch_lrs(torch, lambda o: torch.optim.lr_scheduler.LambdaLR(o, schedule.lr_at), n)
    assert our_lrs(schedule, n) == theirs  # exact: same function, torch multiplies by base 1.0


def _torch_equivalent(torch, schedule, opt):
    """torch's own schedulers for each schedule (see the table in minroots.optim.schedules)."""
    S = torch.optim.lr_scheduler
    w = schedule.warmup_steps
    warmup = lambda: S.LinearLR(opt, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w)
    if isinstance(schedule, ConstantSchedule):
        if w == 0:
            return S.LambdaLR(opt, lambda step: 1.0)
        return S.SequentialLR(opt, [warmup(), S.ConstantLR(opt, 1.0, 0)], milestones=[w])
    if isinstance(schedule, CosineSchedule):
        decay = S.CosineAnnealingLR(opt, T_max=schedule.total_steps - w, eta_min=schedule.min_lr)
    elif isinstance(schedule, LinearSchedule):
        end = schedule.min_lr / schedule.lr
        decay = S.LinearLR(opt, 1.0, end, total_iters=schedule.total_steps - w)
    else:  # the Transformer paper's formula, written out independently
        d = (schedule.lr * w**0.5) ** -2  # the d_model for which the peak is schedule.lr
        return S.LambdaLR(opt, lambda e: d**-0.5 * min((e + 1) ** -0.5, (e + 1) * w**-1.5))
    if w == 0:
        return decay
    return S.SequentialLR(opt, [warmup(), decay], milestones=[w])


@pytest.mark.parity
@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_same_as_torch_schedulers_at_every_step(torch, schedule):
    """torch's LinearLR / CosineAnnealingLR update recursively, so they agree to rounding."""
    n = getattr(schedule, "total_steps", 100) + 1  # up to and including the floor
    lr = schedule.lr if not isinstance(schedule, InverseSqrtSchedule) else 1.0
    theirs = torch_lrs(torch, lambda o: _torch_equivalent(torch, schedule, o), n, lr=lr)
    np.testing.assert_allclose(our_lrs(schedule, n), theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parity
def test_scheduler_with_adamw_matches_torch_training(torch):
    """AdamW + warmup/cosine on a quadratic: the whole trajectory matches torch's."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(5)
    schedule = CosineSchedule(0.1, total_steps=50, warmup_steps=5, min_lr=0.01)
    p = minroots.tensor(x0.copy(), requires_grad=True)
    q = torch.tensor(x0.copy(), requires_grad=True)
    mine = AdamW([p], lr=0.1, weight_decay=0.1)
    theirs = torch.optim.AdamW([q], lr=0.1, weight_decay=0.1)
    mine_sched = LRScheduler(mine, schedule)
    their_sched = torch.optim.lr_scheduler.LambdaLR(theirs, lambda s: schedule.lr_at(s) / 0.1)
    for _ in range(60):
        p.grad = 2 * (p.data - 1.0)
        q.grad = 2 * (q.detach() - 1.0)
        mine.step()
        theirs.step()
        mine_sched.step()
        their_sched.step()
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-9, atol=1e-12)
