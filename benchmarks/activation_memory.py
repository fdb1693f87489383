"""Benchmark: activation checkpointing, memory saved and time paid, one GPT training step.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``);
results in ``benchmarks/README.md``.

Run:  python benchmarks/activation_memory.py [--config large] [--steps 5]

For the plain model and the one with ``checkpoint_activations = True``, each in a fresh process
(same weights, same batch, float32, 2 BLAS threads):

- **kept after forward**: bytes still allocated when the forward pass returns (tracemalloc, which
  NumPy reports its arrays to): what the backward will read, i.e. the activation memory;
- **step peak**: the highest allocation during forward + backward, above what was allocated
  before the step (weights, optimizer state);
- **peak RSS**: the process's resident peak (VmHWM), imports and weights included;
- **ms/step**: median time of forward + backward + AdamW over ``--steps`` steps (without
  tracemalloc, which slows allocation).

The checkpointed step should keep at most half the activations for at most 40% more time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc

THREADS = "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minroots  # noqa: E402
from minroots.nn import TransformerConfig, TransformerModel  # noqa: E402
from minroots.optim import AdamW  # noqa: E402

CONFIGS = {  # the configs of benchmarks/train_step.py: (model, batch)
    "tiny": (dict(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=64), 4),
    "small": (dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128), 16),
    "large": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 8),
}


def probe(config: str, checkpointed: bool, steps: int) -> dict:
    """One process's measurements (see the module docstring)."""
    cfg, batch = CONFIGS[config]
    minroots.manual_seed(0)
    model = TransformerModel(TransformerConfig(**cfg))
    model.checkpoint_activations = checkpointed
    opt = AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))
    y = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))

    def step():
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        opt.step()

    step()  # optimizer state exists from here on
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    model.zero_grad()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    _, loss = model(x, y)
    kept = tracemalloc.get_traced_memory()[0] - base
    loss.backward()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    return {"kept MB": kept / 2**20, "step peak MB": peak / 2**20, "peak RSS MB": hwm,
            "ms/step": 1e3 * statistics.median(times)}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="large", choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--probe", choices=["plain", "checkpointed"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.config, args.probe == "checkpointed", args.steps)))
        return
    cfg, batch = CONFIGS[args.config]
    print(
        f"config {args.config}: {cfg}, batch {batch}, threads {os.environ['OPENBLAS_NUM_THREADS']}"
    )
    rows = {}
    for mode in ("plain", "checkpointed"):
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--steps",
                              str(args.steps), "--probe", mode],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    keys = list(rows["plain"])
    print(f"{'':<13}" + "".join(f"{k:>14}" for k in keys))
    for mode, r in rows.items():
        print(f"{mode:<13}" + "".join(f"{r[k]:14.1f}" for k in keys))
    p, c = rows["plain"], rows["checkpointed"]
    print(f"activations kept: {c['kept MB'] / p['kept MB']:.2f}x; step peak: "
          f"{c['step peak MB'] / p['step peak MB']:.2f}x; step time: "
          f"{c['ms/step'] / p['ms/step']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
