"""Benchmark: one GPT training step (forward + cross-entropy + backward + AdamW), minroots vs
PyTorch eager on the CPU, in the same process, interleaved, float32, dropout 0, 2 threads.

Book chapter 7, "Training" (``book/07_training.md``);
results in ``benchmarks/README.md``.

Run:  python benchmarks/train_step.py [--configs small large] [--steps 20] [--warmup 3]
      python benchmarks/train_step.py --device cuda --configs large xl   # CuPy vs PyTorch CUDA
      (add --precision bf16 or fp16 for 16-bit products in both, chapter 13)

``BENCH_THREADS`` (default 2) sets the threads of BLAS, torch and minroots' pool. On a busy
machine, ``BENCH_THREADS=1 python benchmarks/train_step.py --clock cpu`` compares one thread of
each by CPU time, which other processes disturb much less than wall-clock time.

Both models start from the same weights (GPT-2 initialization, copied from minroots into torch).
Reported per config: tokens/s (median over timed steps), the minroots/PyTorch ratio, the step's
model FLOPs utilization (MFU) against the measured float32 matmul peak of this machine, and the
peak memory (VmHWM) of a separate process running only that implementation (Linux), and
how much of it the training steps added (step MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

THREADS = os.environ.get("BENCH_THREADS", "2")  # threads of BLAS, torch and minroots' pool
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINROOTS_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minroots  # noqa: E402
from minroots.nn import TransformerConfig, TransformerModel  # noqa: E402
from minroots.optim import AdamW  # noqa: E402

CONFIGS = {
    "small": (dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128), 16),
    "large": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 8),
    # GPT-2 small's body (12 x 768, context 1024): a size that keeps a GPU busy (--device cuda)
    "xl": (dict(vocab_size=65, block_size=1024, n_layer=12, n_head=12, n_embd=768), 16),
}
DEVICE = {"name": "cpu", "precision": "float32"}  # set by --device/--precision in main()


def _sync():
    """Wait for queued GPU work, so that a step's time is its own (nothing to do on the CPU)."""
    if DEVICE["name"] == "cuda":
        import torch

        minroots.backend.synchronize("cuda")
        torch.cuda.synchronize()


def _autocast_minroots():
    from minroots.autograd.autocast import autocast

    p = DEVICE["precision"]
    return autocast(None if p == "float32" else minroots.backend.half_dtype(p, DEVICE["name"]))


def _autocast_torch():
    import contextlib

    import torch

    p = DEVICE["precision"]
    if p == "float32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if p == "bf16" else torch.float16
    return torch.autocast(DEVICE["name"], dtype=dtype)


# ---------------------------------------------------------------------- the PyTorch reference
def torch_gpt(model: TransformerModel):
    """A nanoGPT-style PyTorch GPT with the minroots model's weights (fused SDPA etc.)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    c = model.config

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(c.n_embd), nn.LayerNorm(c.n_embd)
            self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
            self.attn_proj = nn.Linear(c.n_embd, c.n_embd)
            self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd)
            self.mlp_proj = nn.Linear(4 * c.n_embd, c.n_embd)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, c.n_head, d // c.n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, d))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(c.vocab_size, c.n_embd)
            self.wpe = nn.Embedding(c.block_size, c.n_embd)
            self.h = nn.ModuleList(Block() for _ in range(c.n_layer))
            self.ln_f = nn.LayerNorm(c.n_embd)
            self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    ref = GPT()
    names = {"attn.c_attn": "c_attn", "attn.c_proj": "attn_proj", "mlp.c_fc": "c_fc",
             "mlp.c_proj": "mlp_proj"}  # fmt: skip
    theirs = dict(ref.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            tname = name
            for a, b in names.items():
                tname = tname.replace(a, b)
            theirs[tname].copy_(torch.from_numpy(minroots.backend.to_numpy(p.data)))
    return ref.to(DEVICE["name"])


# ---------------------------------------------------------------------- the machine
_ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
        "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")  # fmt: skip


def cpu_description() -> str:
    """The CPU model, its vector ISA flags, core count, NumPy's SIMD targets and BLAS core (Linux
    ``/proc/cpuinfo``; other systems print what ``platform`` knows). Speed ratios depend on the
    CPU kind far more than on anything else, so every benchmark header names it."""
    import platform

    model, flags, info = platform.processor() or platform.machine(), set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
        model = f"{info['model name']} (family {info['cpu family']} model {info['model']})"
        flags = set(info.get("flags", "").split())
    except (OSError, KeyError):
        pass
    isa = " ".join(f for f in _ISA if f in flags) or "unknown"
    simd = np.show_config(mode="dicts").get("SIMD Extensions", {}).get("found", [])
    return (f"CPU: {model}, {os.cpu_count()} logical CPUs; ISA: {isa}\n"
            f"NumPy {np.__version__} SIMD: {' '.join(simd)}; BLAS: {_blas_core()}")  # fmt: skip


def _blas_core() -> str:
    """OpenBLAS's name for the kernels it picked at run time (e.g. ``SkylakeX``, ``Zen``)."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            path = next(line.split()[-1] for line in f if "openblas" in line.lower())
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                     "openblas_get_corename"):  # fmt: skip
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return f"OpenBLAS {fn().decode()}"
    except (OSError, StopIteration):
        pass
    return "unknown"


# ---------------------------------------------------------------------- timing
def matmul_peak_gflops(torch=None) -> tuple[float, float | None]:
    """Best float32 GFLOP/s of a square matmul (2048 on the CPU, 8192 on a GPU): NumPy (OpenBLAS)
    or CuPy, and torch."""
    n = 8192 if DEVICE["name"] == "cuda" else 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    xa = minroots.backend.to_device(a, DEVICE["name"])
    best_np = max(_gflops(lambda: xa @ xa, n) for _ in range(5))
    best_t = None
    if torch is not None:
        ta = torch.from_numpy(a).to(DEVICE["name"])
        best_t = max(_gflops(lambda: ta @ ta, n) for _ in range(5))
    return best_np, best_t


def _gflops(fn, n):
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return 2 * n**3 / (time.perf_counter() - t) / 1e9


def train_flops_per_token(cfg: dict) -> float:
    """6 N (weights, forward + backward) + 12 L d T (attention scores and values), per token."""
    d, n_layer, t, v = cfg["n_embd"], cfg["n_layer"], cfg["block_size"], cfg["vocab_size"]
    n_matmul = n_layer * 12 * d * d + v * d  # weights used in matmuls (lm_head included)
    return 6 * n_matmul + 6 * n_layer * d * t  # causal: half of 12 L d T is skippable, count all


def make_step_minroots(cfg, batch, seed=0):
    minroots.manual_seed(seed)
    model = TransformerModel(TransformerConfig(**cfg)).to(DEVICE["name"])
    opt = AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))
    y = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))
    xd, yd = (minroots.backend.to_device(a, DEVICE["name"]) for a in (x, y))

    def step():
        with _autocast_minroots():
            _, loss = model(xd, yd)
            model.zero_grad()
            loss.backward()
        opt.step()
        _sync()
        return loss.item()

    return model, step, (x, y)


def make_step_torch(model, data):
    import torch

    ref = torch_gpt(model)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, weight_decay=0.1)
    x, y = (torch.from_numpy(a).to(DEVICE["name"]) for a in data)

    def step():
        with _autocast_torch():
            loss = ref(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync()
        return loss.item()

    return step


def peak_memory_mb(impl: str, config: str, steps: int = 3) -> tuple[float, float]:
    """Peak resident memory (MB) of a fresh process that runs only ``impl``'s training step, and
    its growth during the steps (activations, gradients, optimizer state; not the imports)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-probe", impl, config, str(steps)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak, growth = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(growth)


def _memory_probe(impl: str, config: str, steps: int) -> None:
    cfg, batch = CONFIGS[config]
    model, step, data = make_step_minroots(cfg, batch)
    if impl == "torch":
        import torch

        torch.set_num_threads(int(THREADS))
        step = make_step_torch(model, data)
    before = _proc_status_mb("VmRSS")
    for _ in range(steps):
        step()
    # VmHWM: this process's peak resident set (ru_maxrss would include the parent's, kept across exec)
    print(_proc_status_mb("VmHWM"), _proc_status_mb("VmHWM") - before)


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field))
    return int(line.split()[1]) / 1024


def run(config: str, steps: int, warmup: int, peak_np: float, peak_t, with_memory: bool,
        clock=time.perf_counter) -> dict:  # fmt: skip
    import torch

    cfg, batch = CONFIGS[config]
    model, step_m, data = make_step_minroots(cfg, batch)
    step_t = make_step_torch(model, data)
    loss_m, loss_t = step_m(), step_t()  # the same weights and data: the same first loss
    assert abs(loss_m - loss_t) < (1e-3 if DEVICE["precision"] == "float32" else 2e-2), (
        loss_m,
        loss_t,
    )
    for _ in range(warmup):
        step_m(), step_t()
    times = {"minroots": [], "torch": []}
    for i in range(steps):  # interleaved, alternating who goes first
        order = [("minroots", step_m), ("torch", step_t)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    tokens = batch * cfg["block_size"]
    fpt = train_flops_per_token(cfg)
    res = {"config": config, "tokens/step": tokens, "first loss": (loss_m, loss_t)}
    for name, ts in times.items():
        med = statistics.median(ts)
        res[name] = {
            "tok/s": tokens / med,
            "ms": 1e3 * med,
            "mfu": fpt * tokens / med / 1e9 / peak_np,
        }
    res["ratio"] = res["minroots"]["tok/s"] / res["torch"]["tok/s"]
    if with_memory:
        for name in ("minroots", "torch"):
            res[name]["peak MB"] = peak_memory_mb(name, config)
    _ = torch, peak_t
    return res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "large"], choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the main thread's CPU time, for BENCH_THREADS=1 on a busy "
                        "machine (other processes' turns on the core are not counted)")  # fmt: skip
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="cuda: minroots on CuPy against PyTorch CUDA eager (no memory column)",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "bf16", "fp16"],
        help="16-bit products in both (minroots autocast, torch.autocast)",
    )
    parser.add_argument("--memory-probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    DEVICE.update(name=args.device, precision=args.precision)
    if args.memory_probe:
        _memory_probe(args.memory_probe[0], args.memory_probe[1], int(args.memory_probe[2]))
        return
    import torch

    torch.set_num_threads(int(THREADS))
    peak_np, peak_t = matmul_peak_gflops(torch)
    where = "NumPy" if args.device == "cpu" else "CuPy"
    print(cpu_description())
    print(f"device={args.device} precision={args.precision} threads={THREADS}  numpy "
          f"{np.__version__}  torch {torch.__version__}  float32 matmul peak: {where} "
          f"{peak_np:.0f} GFLOP/s, torch {peak_t:.0f} GFLOP/s")  # fmt: skip
    print(f"{'config':<7} {'impl':<9} {'tok/s':>8} {'ms/step':>8} {'MFU':>6} {'peak MB':>8} "
          f"{'step MB':>8}  ratio")  # fmt: skip
    for config in args.configs:
        memory = not args.no_memory and args.device == "cpu"
        clock = time.thread_time if args.clock == "cpu" else time.perf_counter
        r = run(config, args.steps, args.warmup, peak_np, peak_t, memory, clock)
        for name in ("minroots", "torch"):
            d = r[name]
            mem = (
                f"{d['peak MB'][0]:8.0f} {d['peak MB'][1]:8.0f}"
                if "peak MB" in d
                else f"{'-':>8} {'-':>8}"
            )
            ratio = f"{r['ratio']:.2f}x" if name == "minroots" else "1.00x"
            print(
                f"{config:<7} {name:<9} {d['tok/s']:8.0f} {d['ms']:8.1f} {d['mfu']:6.1%} {mem}  {ratio}"
            )


if __name__ == "__main__":
    main()
