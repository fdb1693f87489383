"""minroots.optim without a reference library: hand-checkable steps, invariants, parameter groups,
state round trips, dtype and in-place behaviour, and clear errors on bad input."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minroots
from minroots.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    clip_grad_norm_,
    load_state,
    weight_decay_groups,
)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
vectors = hnp.arrays(np.float64, st.integers(1, 8), elements=finite)


def param(values, dtype=np.float64):
    return minroots.tensor(np.array(values, dtype=dtype), requires_grad=True)


def quadratic_run(make_opt, steps, x0, dtype=np.float64):
    """Minimise 0.5 * ||x - 3||^2 (gradient x - 3) from x0; return the parameter."""
    p = param(x0, dtype)
    opt = make_opt([p])
    for _ in range(steps):
        p.grad = p.data - np.asarray(3.0, dtype=dtype)
        opt.step()
    return p, opt


# ----------------------------------------------------------------------------- hand examples


@pytest.mark.task5_4
def test_sgd_one_step_by_hand():
    p = param([1.0, 2.0])
    p.grad = np.array([0.5, -1.0])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, 2.1], rtol=0, atol=1e-15)


@pytest.mark.task5_4
def test_sgd_momentum_by_hand():
    # docstring example: constant gradient 1, lr 0.1, momentum 0.9 -> -0.1, then -0.29 in total
    p = param([0.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.1], atol=1e-15)
    p.grad = np.array([1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.29], atol=1e-15)
    np.testing.assert_allclose(opt.state[0]["momentum_buffer"], [1.9], atol=1e-15)


@pytest.mark.task5_4
def test_sgd_nesterov_and_weight_decay_by_hand():
    # g = grad + wd * theta = 1 + 0.5 * 2 = 2; b_1 = 2; u = g + mu * b = 2 + 0.5 * 2 = 3
    p = param([2.0])
    p.grad = np.array([1.0])
    SGD([p], lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 - 0.1 * 3.0], atol=1e-15)


@pytest.mark.task5_1
@given(vectors, vectors)
def test_adam_first_step_moves_every_coordinate_by_lr(x, g):
    # t = 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    n = min(len(x), len(g))
    p = param(x[:n])
    p.grad = g[:n].copy()
    Adam([p], lr=0.01, eps=1e-8).step()
    expected = x[:n] - 0.01 * g[:n] / (np.abs(g[:n]) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.task5_1
def test_adam_two_steps_by_hand():
    b1, b2, lr = 0.9, 0.999, 0.1
    p = param([1.0])
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=0.0)
    theta, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([2.0, -1.0], start=1):
        p.grad = np.array([g])
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta -= lr * (m / (1 - b1**t)) / np.sqrt(v / (1 - b2**t))
    np.testing.assert_allclose(p.data, [theta], rtol=1e-14)
    assert opt.state[0]["step"] == 2


@pytest.mark.task5_1
def test_adamw_zero_gradient_decays_geometrically():
    # docstring example: lr 0.1, weight decay 0.5, g = 0 -> each step multiplies theta by 0.95
    p = param([2.0, -4.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = np.zeros(2)
        opt.step()
    np.testing.assert_allclose(p.data, np.array([2.0, -4.0]) * 0.95**3, rtol=1e-14)


@pytest.mark.task5_1
def test_adam_coupled_weight_decay_differs_from_adamw():
    a, _ = quadratic_run(lambda ps: Adam(ps, lr=0.1, weight_decay=0.5), 5, [1.0])
    w, _ = quadratic_run(lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5), 5, [1.0])
    assert abs(a.data[0] - w.data[0]) > 1e-3


@pytest.mark.task5_1
def test_amsgrad_uses_running_max_of_v():
    p = param([0.0])
    opt = Adam([p], lr=0.1, amsgrad=True)
    for g in [10.0, 0.1]:
        p.grad = np.array([g])
        opt.step()
    state = opt.state[0]
    assert state["max_exp_avg_sq"][0] == pytest.approx(0.001 * 100.0)  # v_1, larger than v_2
    assert state["max_exp_avg_sq"][0] > state["exp_avg_sq"][0]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: SGD(ps, lr=0.1),
        lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: Adam(ps, lr=0.1),
        lambda ps: AdamW(ps, lr=0.1, weight_decay=0.0),
    ],
)
def test_optimizers_minimise_a_quadratic(make_opt):
    p, _ = quadratic_run(make_opt, 300, [-2.0, 0.0, 10.0])
    np.testing.assert_allclose(p.data, 3.0, atol=1e-2)


def test_tiny_regression_learns_with_autograd():
    """A real learning test: linear regression through minroots' autograd reaches the solution."""
    rng = np.random.default_rng(0)
    x = minroots.tensor(rng.standard_normal((64, 3)))
    w_true = np.array([[1.5], [-2.0], [0.5]])
    y = minroots.tensor(x.data @ w_true)
    w = minroots.tensor(np.zeros((3, 1)), requires_grad=True)
    opt = AdamW([w], lr=0.05, weight_decay=0.0)
    for _ in range(400):
        opt.zero_grad()
        loss = ((x @ w - y) * (x @ w - y)).mean()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, w_true, atol=1e-3)


# ----------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_parameters_without_gradient_are_skipped(cls):
    a, b = param([1.0, 2.0]), param([3.0])
    a.grad = np.array([1.0, 1.0])
    opt = cls([a, b], lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    opt.step()
    assert b.data.tolist() == [3.0]
    assert 1 not in opt.state
    assert a.data[0] != 1.0


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_updates_in_place_and_keeps_float32(cls):
    p = param(np.linspace(-1, 1, 12).reshape(3, 4), np.float32)
    data = p.data
    kw = {"momentum": 0.9, "weight_decay": 0.1} if cls is SGD else {"weight_decay": 0.1}
    opt = cls([p], lr=0.01, **kw)
    for _ in range(3):
        p.grad = np.ones((3, 4), np.float32)
        grad = p.grad
        opt.step()
        assert grad.tolist() == np.ones((3, 4)).tolist()  # the gradient itself is untouched
    assert p.data is data  # never rebound
    assert p.data.dtype == np.float32
    for v in opt.state[0].values():
        if isinstance(v, np.ndarray):
            assert v.dtype == np.float32 and v.shape == (3, 4)


def test_adam_moment_buffers_are_reused_not_reallocated():
    p = param(np.zeros(5))
    opt = Adam([p], lr=0.1)
    p.grad = np.ones(5)
    opt.step()
    m, v = opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]
    p.grad = np.ones(5)
    opt.step()
    assert opt.state[0]["exp_avg"] is m and opt.state[0]["exp_avg_sq"] is v


def test_zero_grad_sets_none_or_zero():
    p = param([1.0, 2.0])
    opt = SGD([p], lr=0.1)
    p.grad = np.array([1.0, 1.0])
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_take_their_own_options_and_defaults():
    a, b = param([1.0]), param([1.0])
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.0
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(0.5)


def test_weight_decay_groups_split_matrices_from_vectors():
    w, bias, gain = param(np.ones((2, 3))), param(np.ones(3)), param(np.ones(3))
    groups = weight_decay_groups([("w", w), ("b", bias), ("g", gain)], 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert groups[0]["params"] == [w] and groups[1]["params"] == [bias, gain]
    opt = AdamW(groups, lr=0.1)
    for p in (w, bias, gain):
        p.grad = np.zeros(p.shape)
    opt.step()
    np.testing.assert_allclose(w.data, 0.99)  # decayed: (1 - 0.1 * 0.1)
    np.testing.assert_array_equal(bias.data, 1.0)  # not decayed


def test_add_param_group_later():
    a, b = param([1.0]), param([2.0])
    opt = Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.2})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})


def test_closure_is_called_and_its_loss_returned():
    p = param([1.0])

    def closure():
        p.grad = np.array([2.0])
        return 4.0

    assert SGD([p], lr=0.1).step(closure) == 4.0
    assert p.data[0] == pytest.approx(0.8)


def test_accepts_a_generator_of_parameters():
    ps = [param([1.0]), param([2.0])]
    opt = Adam(p for p in ps)
    assert len(opt.param_groups[0]["params"]) == 2


def test_repr_lists_groups():
    text = repr(AdamW([param([1.0])], lr=0.5))
    assert "AdamW" in text and "lr: 0.5" in text and "Parameter Group 0" in text


# ----------------------------------------------------------------------------- state dict


def _train(opt, params, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.shape) + p.data  # depends on the current state
        opt.step()


OPTIMIZERS = [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    lambda ps: AdamW(
        [{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0, "lr": 0.02}], lr=0.01
    ),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
@pytest.mark.parametrize("via_disk", [False, True])
def test_resume_from_state_is_bit_identical(make_opt, via_disk, tmp_path):
    init = [np.linspace(-1, 1, 6).reshape(2, 3), np.array([0.5, -0.5])]
    ref = [param(x.copy()) for x in init]
    ref_opt = make_opt(ref)
    _train(ref_opt, ref, 10, seed=1)
    _train(ref_opt, ref, 7, seed=2)

    first = [param(x.copy()) for x in init]
    opt = make_opt(first)
    _train(opt, first, 10, seed=1)
    if via_disk:
        json_path, st_path = opt.save_state(tmp_path / "opt")
        assert json_path.endswith(".json") and st_path.endswith(".safetensors")
        json.loads((tmp_path / "opt.json").read_text())  # plain JSON
        state = load_state(tmp_path / "opt")
    else:
        state = json.loads(json.dumps(opt.state_dict(), default=lambda a: a.tolist()))
        for entry in state["state"].values():
            for k, v in entry.items():
                if isinstance(v, list):
                    entry[k] = np.array(v)
    resumed = [param(p.data.copy()) for p in first]
    del opt, first
    opt2 = make_opt(resumed)
    opt2.load_state_dict(state)
    _train(opt2, resumed, 7, seed=2)
    for a, b in zip(ref, resumed, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_copy_and_load_restores_hyperparameters():
    p = param([1.0, 2.0])
    opt = Adam([p], lr=0.1, betas=(0.8, 0.9))
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 1
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][0]["betas"] == [0.8, 0.9]
    before = sd["state"][0]["exp_avg"].copy()
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)  # not aliased

    q = param([1.0, 2.0])
    fresh = Adam([q], lr=0.5)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.1 and fresh.param_groups[0]["betas"] == (0.8, 0.9)
    assert fresh.param_groups[0]["params"][0] is q
    sd["state"][0]["exp_avg"][:] = 123.0
    assert fresh.state[0]["exp_avg"][0] != 123.0  # loaded by copy


def test_save_state_before_any_step(tmp_path):
    opt = SGD([param([1.0])], lr=0.1, momentum=0.9)
    opt.save_state(tmp_path / "s")
    fresh = SGD([param([1.0])], lr=0.3, momentum=0.9)
    fresh.load_state(tmp_path / "s")
    assert fresh.state == {} and fresh.param_groups[0]["lr"] == 0.1


def test_load_state_dict_rejects_mismatches():
    p = param(np.ones((2, 2)))
    opt = Adam([p], lr=0.1)
    p.grad = np.ones((2, 2))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        Adam([{"params": [param([1.0])]}, {"params": [param([1.0])]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="has 1 parameters in the state but 2"):
        Adam([param([1.0]), param([1.0])]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*shape \(3,\)"):
        Adam([param([1.0, 2.0, 3.0])]).load_state_dict(sd)
    with pytest.raises(ValueError, match="unexpected state"):
        SGD([param(np.ones((2, 2)))], momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        Adam([param([1.0])]).load_state_dict({"state": {}})


# ----------------------------------------------------------------------------- clipping


@pytest.mark.task5_3
def test_clip_grad_norm_by_hand():
    a, b = param([0.0]), param([0.0])
    a.grad, b.grad = np.array([3.0]), np.array([4.0])
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert isinstance(total, float) and total == pytest.approx(5.0)
    np.testing.assert_allclose([a.grad[0], b.grad[0]], [0.6, 0.8], rtol=1e-6)


@pytest.mark.task5_3
@given(vectors, vectors, st.floats(0.01, 100), st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
def test_clip_grad_norm_properties(g1, g2, max_norm, norm_type):
    a, b, c = param(np.zeros_like(g1)), param(np.zeros_like(g2)), param([0.0])
    a.grad, b.grad = g1.copy(), g2.copy()  # c has no gradient: skipped
    total = clip_grad_norm_([a, b, c], max_norm, norm_type=norm_type)
    both = np.concatenate([g1, g2])
    assert total == pytest.approx(np.linalg.norm(both, ord=norm_type), rel=1e-12, abs=1e-300)
    clipped = np.concatenate([a.grad, b.grad])
    assert np.linalg.norm(clipped, ord=norm_type) <= max_norm * (1 + 1e-9) or total <= max_norm
    scale = min(1.0, max_norm / (total + 1e-6))
    np.testing.assert_allclose(clipped, both * scale, rtol=1e-12)  # direction kept
    assert c.grad is None


@pytest.mark.task5_3
def test_clip_grad_norm_edge_cases():
    p = param([1.0])
    assert clip_grad_norm_(p, 1.0) == 0.0  # a single Tensor, no gradient
    p.grad = np.array([0.5], np.float32)
    assert clip_grad_norm_(p, 1.0) == pytest.approx(0.5)
    assert p.grad.dtype == np.float32 and p.grad[0] == np.float32(0.5)  # untouched
    p.grad = np.array([np.inf])
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_([p], 1.0, norm_type=0)
    with pytest.raises(TypeError, match=r"parameters\[0\]"):
        clip_grad_norm_([np.ones(2)], 1.0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_bad_learning_rate(cls):
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        cls([param([1.0])], lr=-0.1)
    with pytest.raises(TypeError, match="lr must be a real number"):
        cls([param([1.0])], lr="0.1")
    with pytest.raises(ValueError, match=r"param_groups\[1\]: lr"):
        cls([{"params": [param([1.0])]}, {"params": [param([1.0])], "lr": float("nan")}])


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9), (0.9, 1.5)])
def test_betas_out_of_range(cls, betas):
    with pytest.raises(ValueError, match=r"betas\[[01]\] must be"):
        cls([param([1.0])], betas=betas)


@pytest.mark.parametrize("betas", [0.9, (0.9,), (0.9, 0.99, 0.999), ("a", "b")])
def test_betas_not_a_pair(betas):
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam([param([1.0])], betas=betas)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_params_must_be_tensors(cls):
    with pytest.raises(TypeError, match=r"params\[0\] must be a Tensor.*numpy.ndarray"):
        cls([np.ones(3)])
    with pytest.raises(TypeError, match=r"params\[1\] must be a Tensor.*float"):
        cls([param([1.0]), 1.0])
    with pytest.raises(TypeError, match="must be a Tensor"):  # integer data cannot be optimized
        cls([minroots.tensor(np.array([1, 2]))])
    with pytest.raises(TypeError, match="a single .*Tensor.*wrap it in a list"):
        cls(param([1.0]))
    with pytest.raises(TypeError, match="iterable"):
        cls(3)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_empty_params(cls):
    with pytest.raises(ValueError, match="params is empty"):
        cls([])
    with pytest.raises(ValueError, match="'params' is empty"):
        cls([{"params": []}])
    with pytest.raises(ValueError, match="no 'params' key"):
        cls([{"lr": 0.1}])


def test_other_bad_hyperparameters():
    p = param([1.0])
    with pytest.raises(ValueError, match="eps"):
        Adam([p], eps=-1e-8)
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW([p], weight_decay=-0.1)
    with pytest.raises(ValueError, match="momentum"):
        SGD([p], momentum=-0.9)
    with pytest.raises(ValueError, match="dampening"):
        SGD([p], momentum=0.9, dampening=2.0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD([p], nesterov=True)
    with pytest.raises(TypeError, match="amsgrad"):
        Adam([p], amsgrad="yes")
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p])


def test_gradient_of_the_wrong_shape():
    p = param([1.0, 2.0])
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(2,\) but its gradient"):
        Adam([p]).step()


class SignSGD(Optimizer):
    """A new optimizer written as the base class asks: its options, its state, its rule."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def _check_group(self, group, where):
        pass

    def init_state(self, theta, group):
        return {"step": 0}

    def update(self, theta, grad, state, group):
        state["step"] += 1
        theta -= group["lr"] * np.sign(grad)


def test_the_base_step_runs_closure_loop_gradients_and_state_for_a_new_rule():
    a, b = param([1.0, -2.0]), param([3.0])
    opt = SignSGD([a, b])
    a.grad = np.array([0.5, -4.0])  # b has no gradient: skipped, and gets no state
    calls = []
    assert opt.step(closure=lambda: calls.append("closure") or 7.0) == 7.0 and calls == ["closure"]
    np.testing.assert_allclose(a.data, [0.9, -1.9], rtol=0, atol=1e-15)
    assert b.data.tolist() == [3.0] and opt.state == {0: {"step": 1}}
    opt.step()
    assert opt.state[0]["step"] == 2  # init_state made the state once; the rule kept it
    a.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"SignSGD.step: parameter 0 has shape \(2,\)"):
        opt.step()


def test_base_class_is_exported():
    assert issubclass(AdamW, Optimizer) and issubclass(SGD, Optimizer)


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_cupy_matches_numpy_and_state_moves_between_devices(cls, tmp_path):
    kw = {"momentum": 0.9, "nesterov": True} if cls is SGD else {"amsgrad": True}
    x0, grads = np.linspace(-1, 1, 12).reshape(3, 4), np.cos(np.arange(36.0)).reshape(3, 3, 4)
    cpu = param(x0.copy())
    gpu = minroots.tensor(x0.copy(), requires_grad=True, device="cuda")
    opts = [cls([cpu], lr=0.1, weight_decay=0.1, **kw), cls([gpu], lr=0.1, weight_decay=0.1, **kw)]
    xp = minroots.backend.get_array_module(gpu.data)
    for g in grads:
        cpu.grad, gpu.grad = g.copy(), xp.asarray(g)
        for opt in opts:
            opt.step()
    np.testing.assert_allclose(minroots.backend.to_numpy(gpu.data), cpu.data, rtol=1e-12)
    opts[1].save_state(tmp_path / "gpu")  # GPU state -> disk -> a CPU optimizer
    fresh = cls([param(x0.copy())], lr=0.5, **kw)
    fresh.load_state(tmp_path / "gpu")
    for k, v in opts[0].state[0].items():
        np.testing.assert_allclose(np.asarray(fresh.state[0][k]), np.asarray(v), rtol=1e-12)
    a, b = param(np.zeros(3)), minroots.tensor(np.zeros(3), requires_grad=True, device="cuda")
    a.grad, b.grad = np.array([3.0, 4.0, 0.0]), xp.asarray([3.0, 4.0, 0.0])
    assert clip_grad_norm_([b], 1.0) == pytest.approx(clip_grad_norm_([a], 1.0))
    np.testing.assert_allclose(minroots.backend.to_numpy(b.grad), a.grad, rtol=1e-12)
