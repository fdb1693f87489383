"""Profile: where one GPT training step of minroots spends its time, by operation and by kind.

Book chapter 7, "Training" (``book/07_training.md``); results in ``benchmarks/README.md``.

Run:  python benchmarks/profile_step.py [--configs small large] [--steps 20] [--native]

Two breakdowns of the step of ``benchmarks/train_step.py`` (forward, cross-entropy, backward,
AdamW), both in **CPU time** of one thread, so that they hold on a busy machine (a share of CPU
time does not change when other processes take turns on the cores; wall-clock time does):

1. By operation: every graph node's forward (the kernel functions are wrapped) and backward (the
   node's ``_backward`` is wrapped), the optimizer step, ``zero_grad``, and what is left
   (module calls, the graph walk, Python glue), from ``time.thread_time_ns``. Every block that
   the kernels hand to :mod:`minroots.parallel` is timed too, which gives the share of the step
   that can use a second core and a model of the step on two threads (the blocks spread over two
   threads as the pool does; it leaves out the GIL, wake-ups and shared memory bandwidth).
2. By kind (``--native``, Linux ``perf`` only): ``perf record -e cpu-clock`` of a child process
   running the same steps, its samples sorted into BLAS matmul, NumPy loops (by loop: multiply,
   add, exp, tanh, copies...), memory (page faults and zeroing of fresh allocations, memset,
   memcpy, malloc) and the Python interpreter.

BLAS and minroots' own thread pool run on one thread here (``OPENBLAS_NUM_THREADS=1``,
``MINROOTS_NUM_THREADS=1``): the profile is of the work, not of how it is spread over cores.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["BENCH_THREADS"] = "1"  # read by train_step before it imports NumPy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from train_step import CONFIGS, cpu_description, make_step_minroots  # noqa: E402

# ---------------------------------------------------------------------- 1. by operation
# The kernels the GPT calls, as (module, name) of the place it is looked up from.
_KERNELS = {
    "linear (matmul + bias)": [("minroots.nn.linear", "linear")],
    "attention (packed, fused)": [("minroots.nn.attention", "packed_self_attention")],
    "layer norm": [("minroots.nn.layer_norm", "layer_norm")],
    "GELU (tanh)": [("minroots.nn.feed_forward", "gelu")],
    "cross-entropy": [("minroots.nn.gpt", "cross_entropy")],
    "embedding": [("minroots.nn.embedding", "embedding")],
}
_NODE_KIND = {
    "linear": "linear (matmul + bias)",
    "packed_self_attention": "attention (packed, fused)",
    "layer_norm": "layer norm",
    "gelu": "GELU (tanh)",
    "cross_entropy": "cross-entropy",
    "embedding": "embedding",
    "add": "residual add",
    "getitem": "position slice",
}


class OpTimer:
    """Wraps the kernels and every node's backward with CPU-time counters (nanoseconds)."""

    def __init__(self):
        self.fwd = collections.Counter()
        self.bwd = collections.Counter()
        self.regions: list[list[int]] = []  # CPU ns of each block, per map_blocks call
        self._undo = []

    def install(self):
        import importlib

        from minroots import parallel
        from minroots.autograd import Tensor

        original = parallel.map_blocks
        for name, mod in list(sys.modules.items()):  # the kernels' modules imported it by name
            if name.startswith("minroots.") and getattr(mod, "map_blocks", None) is original:
                mod.map_blocks = self._recording(original)
                self._undo.append((mod, "map_blocks", original))

        for kind, places in _KERNELS.items():
            for mod_name, name in places:
                mod = importlib.import_module(mod_name)
                original = getattr(mod, name)
                setattr(mod, name, self._timed(original, kind))
                self._undo.append((mod, name, original))
        make = Tensor.__dict__["_make"]
        timer = self

        def _make(data, parents, backward, op):
            if backward is not None:
                backward = timer._timed_backward(backward, _NODE_KIND.get(op, op or "other"))
            return make.__func__(data, parents, backward, op)

        Tensor._make = staticmethod(_make)
        self._undo.append((Tensor, "_make", make))

    def uninstall(self):
        for obj, name, original in reversed(self._undo):
            setattr(obj, name, original)
        self._undo.clear()

    def _recording(self, map_blocks):
        def wrapper(fn, blocks):
            times = []

            def timed(b):
                t = time.thread_time_ns()
                try:
                    return fn(b)
                finally:
                    times.append(time.thread_time_ns() - t)

            try:
                return map_blocks(timed, blocks)
            finally:
                self.regions.append(times)

        return wrapper

    def modelled_ms(self, n_threads: int) -> float:
        """The blocks' CPU time spread over ``n_threads`` as the pool does it (each block to the
        first free thread, in block order): the makespans of all regions, in ms."""
        total = 0
        for times in self.regions:
            free = [0] * n_threads
            for t in times:
                k = free.index(min(free))
                free[k] += t
            total += max(free)
        return total * 1e-6

    def _timed(self, fn, kind):
        def wrapper(*args, **kwargs):
            t = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self.fwd[kind] += time.thread_time_ns() - t

        return wrapper

    def _timed_backward(self, fn, kind):
        def wrapper(g):
            t = time.thread_time_ns()
            try:
                return fn(g)
            finally:
                self.bwd[kind] += time.thread_time_ns() - t

        return wrapper


def by_operation(config: str, steps: int) -> tuple[list[tuple[str, float, float]], dict]:
    """``[(operation, forward ms per step, backward ms per step)]``, the rest included, and the
    model of the step on 2 cores: ``{"blocks ms", "2 threads ms"}`` per step."""
    import minroots.nn.gpt  # noqa: F401  (the modules whose names the timer replaces)

    cfg, batch = CONFIGS[config]
    model, _, (x, y) = make_step_minroots(cfg, batch)
    from minroots.optim import AdamW

    opt = AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    timer = OpTimer()
    totals = collections.Counter()

    def step(record: bool):
        t0 = time.thread_time_ns()
        _, loss = model(x, y)
        t1 = time.thread_time_ns()
        model.zero_grad()
        t2 = time.thread_time_ns()
        loss.backward()
        t3 = time.thread_time_ns()
        opt.step()
        t4 = time.thread_time_ns()
        if record:
            totals.update(forward=t1 - t0, zero_grad=t2 - t1, backward=t3 - t2, adamw=t4 - t3)

    for _ in range(2):  # warm up: optimizer state, cached masks, allocator
        step(False)
    timer.install()
    try:
        for _ in range(steps):
            step(True)
    finally:
        timer.uninstall()
    ms = 1e-6 / steps
    rows = [(k, timer.fwd[k] * ms, timer.bwd[k] * ms) for k in _ordered(timer)]
    rest_f = (totals["forward"] - sum(timer.fwd.values())) * ms
    rest_b = (totals["backward"] - sum(timer.bwd.values())) * ms
    rows.append(("AdamW step", totals["adamw"] * ms, 0.0))
    rows.append(("zero_grad", totals["zero_grad"] * ms, 0.0))
    rows.append(("rest: module calls, graph walk, glue", rest_f, rest_b))
    in_blocks = sum(sum(times) for times in timer.regions) * ms
    model = {"blocks ms": in_blocks, "2 threads ms": timer.modelled_ms(2) * 1e6 * ms}
    return rows, model


def _ordered(timer: OpTimer) -> list[str]:
    kinds = set(timer.fwd) | set(timer.bwd)
    return sorted(kinds, key=lambda k: -(timer.fwd[k] + timer.bwd[k]))


# ---------------------------------------------------------------------- 2. by kind (perf)
_KINDS = [  # (kind, regular expression on "dso symbol"), first match wins
    ("matmul: BLAS kernels", r"gemm.*kernel|gemv|sdot|saxpy"),
    ("matmul: BLAS packing copies", r"(gemm|omatcopy).*copy|blas_memory"),
    ("matmul: BLAS threads waiting", r"blas_thread_server|inner_thread|exec_blas|sched_yield"),
    ("NumPy multiply", r"_multiply_"),
    ("NumPy add / subtract", r"_add_|_subtract_"),
    ("NumPy divide / sqrt", r"_divide|_sqrt|_reciprocal"),
    ("NumPy exp", r"exp_"),
    ("NumPy tanh", r"tanh"),
    ("NumPy max / fmax", r"fmax|_maximum|max_"),
    ("NumPy sums (einsum, add.reduce)", r"sum_of|pairwise_sum|reduce"),
    (
        "NumPy strided copies (transposes, casts)",
        r"strided_to|_to_contig|cast|TransferNDim"
        r"|raw_array_assign|npyiter_copy|_contig_to",
    ),  # fmt: skip
    ("NumPy comparisons, where, indexing", r"greater|less|equal|where|take|mapiter|fancy|index"),
    ("memory: page faults, zeroing new pages", r"\[kernel|clear_page|page_fault"),
    ("memory: memset / memcpy", r"memset|memmove|memcpy"),
    ("memory: malloc / free", r"malloc|free|_int_|mmap|munmap|brk|PyDataMem"),
    ("Python interpreter", r"libpython|python3"),
]


def by_kind(config: str, steps: int) -> list[tuple[str, float]] | None:
    """``[(kind, share of CPU samples)]`` from ``perf``, or None when perf is not usable.

    ``perf record`` attaches to a child process after its warm-up steps, so the samples cover only
    the timed steps (not the imports and the model's construction)."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--run-only", config, str(steps)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        child.stdout.readline()  # "ready": warmed up
        rec = subprocess.Popen([perf, "record", "-e", "cpu-clock", "-F", "999", "-o", data,
                                "-p", str(child.pid)], stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(1.0)  # let perf attach
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait()
        rec.wait(timeout=60)
        if rec.returncode != 0:
            return None
        rep = subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", "dso,sym",
                              "--stdio"], capture_output=True, text=True)  # fmt: skip
    shares = collections.Counter()
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        text = f"{dso} {sym}"
        kind = next((k for k, rx in _KINDS if re.search(rx, text)), "other")
        if "[kernel" in dso:
            kind = "memory: page faults, zeroing new pages"
        shares[kind] += pct
    return sorted(shares.items(), key=lambda kv: -kv[1])


def _run_only(config: str, steps: int) -> None:
    cfg, batch = CONFIGS[config]
    _, step, _ = make_step_minroots(cfg, batch)
    for _ in range(2):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(steps):
        step()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "large"], choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--native", action="store_true", help="also the perf breakdown by kind")
    parser.add_argument("--run-only", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_only:
        _run_only(args.run_only[0], int(args.run_only[1]))
        return
    print(cpu_description())
    print("CPU time of one thread (BLAS and minroots' pool on 1 thread): shares hold under load\n")
    for config in args.configs:
        rows, model = by_operation(config, args.steps)
        total = sum(f + b for _, f, b in rows)
        print(f"## {config}: {total:.1f} ms of CPU per step ({args.steps} steps)")
        print("| operation | forward ms | backward ms | share |")
        print("|---|---|---|---|")
        for name, f, b in rows:
            print(f"| {name} | {f:.1f} | {b:.1f} | {(f + b) / total:.1%} |")
        two = total - model["blocks ms"] + model["2 threads ms"]
        print(f"\nIn blocks of minroots.parallel: {model['blocks ms'] / total:.1%} of the CPU time. "
              f"Modelled on 2 threads (the blocks spread as the pool does; no GIL or memory "
              f"contention): {two:.1f} ms, {total / two:.2f}x one thread.")  # fmt: skip
        if args.native:
            kinds = by_kind(config, args.steps)
            if kinds is None:
                print("\n(perf is not available: no breakdown by kind)")
            else:
                print(f"\n| kind (perf cpu-clock samples, {config}) | share |")
                print("|---|---|")
                for kind, pct in kinds:
                    if pct >= 0.05:
                        print(f"| {kind} | {pct:.1f}% |")
        print()


if __name__ == "__main__":
    main()
