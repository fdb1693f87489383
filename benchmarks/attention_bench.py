"""Benchmark: dense against tiled (FlashAttention) causal attention, forward + backward, float32.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); results in
``benchmarks/README.md``.

Run:  python benchmarks/attention_bench.py [--lengths 256 1024 4096] [--heads 8] [--dim 64]

For each sequence length T: the peak of NumPy memory (``tracemalloc``, which NumPy reports its
arrays to) during one forward + backward of each kernel, the largest difference of output and
gradients between them, and the median time of interleaved rounds, both as wall-clock time and as
the main thread's CPU time (the CPU time is the figure to read on a busy machine; with
``BENCH_THREADS=1``, the default here, it is all of the work). ``BENCH_THREADS=2`` times both
kernels on two threads of :mod:`minroots.parallel`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

THREADS = os.environ.get("BENCH_THREADS", "1")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINROOTS_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_step import cpu_description  # noqa: E402

import minroots  # noqa: E402
from minroots.nn.functional import scaled_dot_product_attention  # noqa: E402


def run_once(kernel: str, arrays, grad):
    ts = [minroots.tensor(a, requires_grad=True) for a in arrays]
    y = scaled_dot_product_attention(*ts, is_causal=True, kernel=kernel)
    y.backward(grad)
    return [y.data, *(t.grad for t in ts)]


def peak_mb(kernel: str, arrays, grad) -> float:
    """Peak of traced memory above what existed before the call (inputs not counted), in MB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = run_once(kernel, arrays, grad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return (peak - base) / 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(cpu_description())
    print(f"threads={THREADS}; causal attention, B={args.batch}, H={args.heads}, d={args.dim}, "
          f"float32, forward + backward; median of {args.rounds} interleaved rounds\n")  # fmt: skip
    print("| T | dense peak MB | flash peak MB | dense ms (CPU) | flash ms (CPU) "
          "| flash/dense CPU | flash/dense wall | max difference |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for t in args.lengths:
        shape = (args.batch, args.heads, t, args.dim)
        arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(3)]
        grad = rng.standard_normal(shape, dtype=np.float32)
        mem = {k: peak_mb(k, arrays, grad) for k in ("dense", "flash")}
        dense, flash = run_once("dense", arrays, grad), run_once("flash", arrays, grad)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(dense, flash, strict=True))
        del dense, flash
        cpu = {"dense": [], "flash": []}
        wall = {"dense": [], "flash": []}
        for r in range(args.rounds):
            for k in ("dense", "flash") if r % 2 == 0 else ("flash", "dense"):
                w, c = time.perf_counter(), time.thread_time()
                run_once(k, arrays, grad)
                cpu[k].append(time.thread_time() - c)
                wall[k].append(time.perf_counter() - w)
        cd, cf = (1e3 * statistics.median(cpu[k]) for k in ("dense", "flash"))
        wd, wf = (statistics.median(wall[k]) for k in ("dense", "flash"))
        print(f"| {t} | {mem['dense']:.0f} | {mem['flash']:.0f} | {cd:.0f} | {cf:.0f} | "
              f"{cf / cd:.2f} | {wf / wd:.2f} | {diff:.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
