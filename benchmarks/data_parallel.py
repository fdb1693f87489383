"""Benchmark: data-parallel training on 1 and 2 ranks (MPI), tokens/s, all-reduce time, efficiency.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``);
results in ``benchmarks/README.md``.

Run:  python benchmarks/data_parallel.py [--ranks 1 2] [--config small] [--steps 20]

For each rank count N, ``mpirun -np N`` starts this script as N workers with **1 BLAS thread
each** (2 ranks on 2 cores use both, as a 1-rank run with 2 threads would). Weak scaling: every
rank keeps ``--batch`` rows, so the global batch is N times larger. Each worker times
``Trainer.train_step`` (batch, forward, backward, bucketed all-reduce, clipping, AdamW); rank 0
reports the median step time, the global tokens/s, the all-reduce time per step and its share,
and the number of buckets. Scaling efficiency is ``tokens/s(N) / (N * tokens/s(1))``.

The all-reduce's share of the step bounds what overlapping it with the backward pass could
save; minroots does not overlap (see chapter 13).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CONFIGS = {
    "tiny": dict(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=32),
    "small": dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128),
    "large": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384),
}


def worker(config: str, batch: int, steps: int, warmup: int) -> None:
    import minroots
    from minroots.data import TextDataset
    from minroots.nn import TransformerConfig, TransformerModel
    from minroots.training import Trainer, TrainerConfig

    cfg = CONFIGS[config]
    minroots.manual_seed(0)
    data = TextDataset(minroots.data.load_corpus("shakespeare")[:200_000],
                       block_size=cfg["block_size"], use_cache=False)  # fmt: skip
    model = TransformerModel(TransformerConfig(**{**cfg, "vocab_size": data.vocab_size}))
    from minroots.distributed.world import launched_ranks

    ranks = launched_ranks()[0]
    tcfg = TrainerConfig(max_steps=steps + warmup, batch_size=batch * ranks, out_dir=None,
                         log_interval=0, eval_interval=0, warmup=2)  # fmt: skip
    trainer = Trainer(model, data, config=tcfg)
    times = []
    for i in range(steps + warmup):
        if i == warmup:
            trainer.world.comm_seconds = 0.0
        start = time.perf_counter()
        trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if trainer.world.is_main:
        step = statistics.median(times)
        comm = trainer.world.comm_seconds / steps
        tokens = batch * ranks * cfg["block_size"]
        buckets = len(trainer.world._buckets) if trainer.world._buckets is not None else 0
        print(json.dumps({"ranks": ranks, "tok/s": tokens / step, "ms/step": 1e3 * step,
                          "comm ms/step": 1e3 * comm, "comm share": comm / step,
                          "buckets": buckets}))  # fmt: skip


def launch(ranks: int, args) -> dict:
    command = [sys.executable, __file__, "--worker", "--config", args.config, "--batch",
               str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
    if ranks > 1:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("data_parallel.py: mpirun not found (apt-get install openmpi-bin)")
        version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
        flags = ["--allow-run-as-root", "--oversubscribe"] if "Open MPI" in version else []
        command = [mpirun, *flags, "-np", str(ranks), *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--config", default="small", choices=list(CONFIGS))
    parser.add_argument("--batch", type=int, default=8, help="rows per rank")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.config, args.batch, args.steps, args.warmup)
        return
    print(f"config {args.config}: {CONFIGS[args.config]}, {args.batch} rows per rank, "
          f"1 BLAS thread per rank, {args.steps} timed steps")  # fmt: skip
    print(f"{'ranks':>5} {'tok/s':>9} {'ms/step':>8} {'comm ms':>8} {'comm %':>7} "
          f"{'buckets':>7} {'efficiency':>10}")  # fmt: skip
    base = None
    for ranks in args.ranks:
        r = launch(ranks, args)
        base = base or r["tok/s"] / r["ranks"]
        print(f"{r['ranks']:5d} {r['tok/s']:9.0f} {r['ms/step']:8.1f} {r['comm ms/step']:8.2f} "
              f"{100 * r['comm share']:6.1f}% {r['buckets']:7d} "
              f"{r['tok/s'] / (r['ranks'] * base):10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
