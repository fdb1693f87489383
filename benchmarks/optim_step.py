"""Benchmark: one optimizer step (AdamW, SGD with momentum) and clip_grad_norm_ on GPT-shaped
float32 parameters, minroots vs torch.optim in the same process, interleaved.

    .venv/bin/python benchmarks/optim_step.py [--repeats 30]

Shapes follow the GPT configs of issue 3 (small: 4 layers, 128 dims, vocab 65, block 128;
large: 6 layers, 384 dims, block 256). Times are medians in milliseconds; "ratio" is
minroots time / torch time (below 1: minroots is faster). Also printed: the largest relative
difference of the parameters after the timed steps (max |minroots - torch| / max |minroots| per
parameter, float32; a sanity check, not a parity test).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

import minroots
from minroots.optim import SGD, AdamW, clip_grad_norm_


def gpt_shapes(n_layer: int, n_embd: int, vocab: int, block: int) -> list[tuple[int, ...]]:
    e = n_embd
    shapes = [(vocab, e), (block, e)]
    for _ in range(n_layer):
        shapes += [(e,), (e,), (e, 3 * e), (3 * e,), (e, e), (e,)]  # ln_1, attention
        shapes += [(e,), (e,), (e, 4 * e), (4 * e,), (4 * e, e), (e,)]  # ln_2, MLP
    return shapes + [(e,), (e,)]  # ln_f


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    configs = {"small": gpt_shapes(4, 128, 65, 128), "large": gpt_shapes(6, 384, 65, 256)}
    print(f"torch {torch.__version__}, numpy {np.__version__}, float32, 2 threads, median ms")
    print(f"{'config':6} {'params':>9} {'operation':32} {'minroots':>9} {'torch':>9} {'ratio':>6}"
          f" {'max rel diff':>12}")  # fmt: skip
    for name, shapes in configs.items():
        rng = np.random.default_rng(0)
        init = [rng.standard_normal(s).astype(np.float32) * 0.02 for s in shapes]
        grads = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in shapes]
        n_params = sum(x.size for x in init)
        cases = [
            (
                "AdamW (torch foreach=False)",
                lambda ps: AdamW(ps, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1),
                lambda qs: torch.optim.AdamW(
                    qs, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=False
                ),
            ),
            (
                "AdamW (torch foreach=True)",
                lambda ps: AdamW(ps, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1),
                lambda qs: torch.optim.AdamW(
                    qs, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=True
                ),
            ),
            (
                "AdamW (torch fused=True)",
                lambda ps: AdamW(ps, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1),
                lambda qs: torch.optim.AdamW(
                    qs, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True
                ),
            ),
            (
                "SGD momentum 0.9 (foreach=False)",
                lambda ps: SGD(ps, lr=1e-2, momentum=0.9, weight_decay=0.1),
                lambda qs: torch.optim.SGD(
                    qs, lr=1e-2, momentum=0.9, weight_decay=0.1, foreach=False
                ),
            ),
        ]
        for label, make_mine, make_theirs in cases:
            ps = [minroots.tensor(x.copy(), requires_grad=True) for x in init]
            qs = [torch.tensor(x.copy(), requires_grad=True) for x in init]
            for p, q, g in zip(ps, qs, grads, strict=True):
                p.grad, q.grad = g, torch.from_numpy(g)
            mine, theirs = make_mine(ps), make_theirs(qs)
            for _ in range(3):  # warm-up: allocates the state
                mine.step()
                theirs.step()
            t_mine, t_theirs = [], []
            for _ in range(args.repeats):  # interleaved
                t_mine.append(_time(mine.step))
                t_theirs.append(_time(theirs.step))
            a, b = np.median(t_mine) * 1e3, np.median(t_theirs) * 1e3
            diff = max(
                float(np.abs(p.data - q.detach().numpy()).max() / np.abs(p.data).max())
                for p, q in zip(ps, qs, strict=True)
            )
            print(f"{name:6} {n_params:9,d} {label:32} {a:9.2f} {b:9.2f} {a / b:6.2f} {diff:12.1e}")

        # clip_grad_norm_ (max_norm small enough that gradients are rescaled every call)
        ps = [minroots.tensor(x.copy(), requires_grad=True) for x in init]
        qs = [torch.tensor(x.copy(), requires_grad=True) for x in init]
        t_mine, t_theirs = [], []
        for _ in range(args.repeats):
            for p, q, g in zip(ps, qs, grads, strict=True):
                p.grad, q.grad = g.copy(), torch.from_numpy(g.copy())
            t_mine.append(_time(partial(clip_grad_norm_, ps, 1e-3)))
            t_theirs.append(_time(partial(torch.nn.utils.clip_grad_norm_, qs, 1e-3)))
        a, b = np.median(t_mine) * 1e3, np.median(t_theirs) * 1e3
        diff = max(
            float(np.abs(p.grad - q.grad.numpy()).max() / np.abs(p.grad).max())
            for p, q in zip(ps, qs, strict=True)
        )
        label = "clip_grad_norm_"
        print(f"{name:6} {n_params:9,d} {label:32} {a:9.2f} {b:9.2f} {a / b:6.2f} {diff:12.1e}")


if __name__ == "__main__":
    main()
