"""minroots.optim against torch.optim: 100-step trajectories on a quadratic and on a small MLP
(float64, rtol 1e-9), parameter groups, float32, and clip_grad_norm_."""

import numpy as np
import pytest

import minroots
from minroots.optim import SGD, Adam, AdamW, clip_grad_norm_, weight_decay_groups

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.parity

CONFIGS = [
    ("SGD", {"lr": 0.01}),
    ("SGD", {"lr": 0.01, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "momentum": 0.9}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "betas": (0.9, 0.95)}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CONFIGS]
MINE = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def assert_trajectories_match(mine, theirs, rtol=1e-9, atol=1e-12):
    for k, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=atol, err_msg=f"parameter {k} drifted from torch.optim"
        )


# ----------------------------------------------------------------------------- quadratic


def quadratic_problem(seed=0, n=6):
    """f(x) = 0.5 x^T A x - b^T x with A symmetric positive definite; gradient A x - b."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T / n + np.eye(n), rng.standard_normal(n), rng.standard_normal(n)


def step_both(a, b, mine, theirs):
    """One step on the quadratic (gradient ``a x - b``) for ``(p, optimizer)`` of minroots and
    ``(q, optimizer)`` of torch."""
    (p, opt), (q, torch_opt) = mine, theirs
    p.grad = a @ p.data - b
    q.grad = torch.from_numpy(a @ q.detach().numpy() - b)
    opt.step()
    torch_opt.step()


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_quadratic_trajectory_matches_torch(name, kwargs):
    a, b, x0 = quadratic_problem()
    p = minroots.tensor(x0.copy(), requires_grad=True)
    q = torch.tensor(x0.copy(), requires_grad=True)
    mine, theirs = MINE[name]([p], **kwargs), getattr(torch.optim, name)([q], **kwargs)
    for _ in range(100):
        step_both(a, b, (p, mine), (q, theirs))
        assert_trajectories_match([p.data], [q.detach().numpy()])
    assert not np.allclose(p.data, x0)  # it did move
    assert mine.state_dict()["state"].keys() == theirs.state_dict()["state"].keys()
    for i, entry in theirs.state_dict()["state"].items():  # same state, same names
        assert mine.state_dict()["state"][i].keys() == entry.keys()
        for key, value in entry.items():
            np.testing.assert_allclose(
                np.asarray(mine.state[i][key]), value.numpy(), rtol=1e-9, atol=1e-12
            )


# ----------------------------------------------------------------------------- MLP


def mlp_init(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((4, 16)) * 0.5,  # W1
        np.zeros(16),  # b1
        rng.standard_normal((16, 3)) * 0.25,  # W2
        np.zeros(3),  # b2
    ]


def mlp_data(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((32, 4)), rng.standard_normal((32, 3))


def mlp_loss(params, x, y):
    """Mean squared error of tanh(x W1 + b1) W2 + b2 (same code for minroots and torch)."""
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    d = h @ w2 + b2 - y
    return (d * d).mean()


def run_mlp(lib, make_opt, steps=100):
    """Train the MLP with ``lib`` (``minroots`` or ``torch``: the same code runs on both);
    return the final parameters (NumPy) and the losses."""
    params = [lib.tensor(w.copy(), requires_grad=True) for w in mlp_init()]
    x, y = (lib.tensor(a) for a in mlp_data())
    opt = make_opt(params)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = mlp_loss(params, x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return [p.detach().numpy() for p in params], losses


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_mlp_trajectory_matches_torch(name, kwargs):
    mine, mine_losses = run_mlp(minroots, lambda ps: MINE[name](ps, **kwargs))
    theirs, their_losses = run_mlp(torch, lambda ps: getattr(torch.optim, name)(ps, **kwargs))
    assert mine_losses[-1] < mine_losses[0]  # it trained
    np.testing.assert_allclose(mine_losses, their_losses, rtol=1e-9)
    assert_trajectories_match(mine, theirs)


def test_mlp_param_groups_match_torch():
    """Decay only on matrices (nanoGPT's groups), a different lr for the second group."""

    def groups(ps):
        decay, no_decay = weight_decay_groups(ps, 0.1)
        no_decay["lr"] = 0.02
        return [decay, no_decay]

    mine, _ = run_mlp(minroots, lambda ps: AdamW(groups(ps), lr=0.01, betas=(0.9, 0.95)))
    theirs, _ = run_mlp(
        torch,
        lambda ps: torch.optim.AdamW(
            [
                {"params": [ps[0], ps[2]], "weight_decay": 0.1},
                {"params": [ps[1], ps[3]], "weight_decay": 0.0, "lr": 0.02},
            ],
            lr=0.01,
            betas=(0.9, 0.95),
        ),
    )
    assert_trajectories_match(mine, theirs)


def test_float32_trajectory_stays_float32_and_close_to_torch():
    a, b, x0 = quadratic_problem(seed=3)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    p = minroots.tensor(x0.astype(np.float32), requires_grad=True)
    q = torch.tensor(x0.astype(np.float32), requires_grad=True)
    mine = AdamW([p], lr=0.01, weight_decay=0.1)
    theirs = torch.optim.AdamW([q], lr=0.01, weight_decay=0.1)
    for _ in range(50):
        step_both(a32, b32, (p, mine), (q, theirs))
    assert p.data.dtype == np.float32 and mine.state[0]["exp_avg_sq"].dtype == np.float32
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_loaded_from_torch_continues_identically():
    """The state format mirrors torch's: a torch state dict (as arrays) resumes our optimizer."""
    a, b, x0 = quadratic_problem(seed=4)
    q = torch.tensor(x0.copy(), requires_grad=True)
    theirs = torch.optim.Adam([q], lr=0.01, amsgrad=True)
    for _ in range(20):
        q.grad = torch.from_numpy(a @ q.detach().numpy() - b)
        theirs.step()
    sd = theirs.state_dict()
    state = {
        i: {k: (int(v.item()) if k == "step" else v.numpy().copy()) for k, v in s.items()}
        for i, s in sd["state"].items()
    }
    keep = ("params", "lr", "betas", "eps", "weight_decay", "amsgrad")
    groups = [{k: v for k, v in g.items() if k in keep} for g in sd["param_groups"]]
    p = minroots.tensor(q.detach().numpy().copy(), requires_grad=True)
    mine = Adam([p], lr=0.5)
    mine.load_state_dict({"state": state, "param_groups": groups})
    for _ in range(20):
        step_both(a, b, (p, mine), (q, theirs))
    assert_trajectories_match([p.data], [q.detach().numpy()])


# ----------------------------------------------------------------------------- clipping


@pytest.mark.task5_3
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    grads = [rng.standard_normal(s) for s in shapes]
    mine = [minroots.tensor(np.zeros(s), requires_grad=True) for s in shapes]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, q, g in zip(mine, theirs, grads, strict=True):
        p.grad, q.grad = g.copy(), torch.from_numpy(g.copy())
    total = clip_grad_norm_(mine, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total == pytest.approx(expected.item(), rel=1e-12)
    for p, q in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.task5_3
def test_clip_grad_norm_float32_matches_torch():
    rng = np.random.default_rng(8)
    g = rng.standard_normal((64, 64)).astype(np.float32) * 10
    p = minroots.tensor(np.zeros((64, 64), np.float32), requires_grad=True)
    q = torch.zeros((64, 64), requires_grad=True)
    p.grad, q.grad = g.copy(), torch.from_numpy(g.copy())
    total = clip_grad_norm_([p], 1.0)
    expected = torch.nn.utils.clip_grad_norm_([q], 1.0)
    assert total == pytest.approx(expected.item(), rel=1e-5)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-5, atol=1e-8)
