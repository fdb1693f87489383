"""Benchmark the main job: `minroots train` with the default preset (target: <= 5 min on 2 cores,
validation loss < 1.8 nats/char), and its training step against PyTorch eager on the same GPT.

Book chapter 7, "Training" (``book/07_training.md``).

Two parts:

1. Throughput, interleaved: rounds of ``--steps`` training steps of the default preset's model
   (Trainer.train_step: forward, cross-entropy, backward, clipping, AdamW, schedule) alternate with
   the same number of steps of Hugging Face's GPT-2 of the same shape in PyTorch eager (fused
   attention, AdamW, clipping) on the same batches. The machine's speed drifts, so compare the
   ratio from the same run.
2. The main job: ``python -m minroots train`` in a fresh process, as a user runs it, timed from
   start to exit; its last lines (validation perplexity, sample) are printed and checked against
   the targets. Skip it with ``--no-full``.

Run::

    .venv/bin/python benchmarks/main_job.py                # both parts (about 6 minutes)
    .venv/bin/python benchmarks/main_job.py --no-full      # throughput only (about 1 minute)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time


def minroots_stepper(run: dict, dataset):
    import minroots
    from minroots.nn import TransformerConfig, TransformerModel
    from minroots.training import Trainer, TrainerConfig

    minroots.manual_seed(0)
    model = TransformerModel(TransformerConfig(vocab_size=dataset.vocab_size, **run["model"]))
    train = {**run["train"], "out_dir": None, "log_interval": 0}
    trainer = Trainer(model, dataset, config=TrainerConfig.from_dict(train))
    return lambda: trainer.train_step()[0]


def torch_stepper(run: dict, dataset):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m, t = run["model"], run["train"]
    config = GPT2Config(
        vocab_size=dataset.vocab_size, n_positions=m["block_size"], n_embd=m["n_embd"],
        n_layer=m["n_layer"], n_head=m["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, activation_function="gelu_new", bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=t["lr"], betas=tuple(t["betas"]) if "betas" in t else (0.9, 0.99),
    )  # fmt: skip
    import numpy as np

    rng = np.random.default_rng(0)

    def step():
        x, y = dataset.get_batch("train", t["batch_size"], rng)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.get("clip_norm") or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def throughput(rounds: int, steps: int) -> None:
    from minroots.training.run_config import build_dataset, load_run_config

    run = load_run_config("default")
    block = run["model"]["block_size"]
    dataset = build_dataset(run["data"], block, 0)
    tokens = run["train"]["batch_size"] * run["train"].get("grad_accum_steps", 1) * block
    contenders = {"minroots": minroots_stepper(run, dataset)}
    try:
        import torch

        torch.set_num_threads(2)
        contenders["pytorch eager"] = torch_stepper(run, dataset)
    except ImportError:
        print("(PyTorch/transformers not installed: minroots only)")
    times = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up: first-call allocations, caches
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():  # interleaved: both see the same machine state
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    print(f"\ntraining step of the default preset ({tokens} tokens/step), {rounds} x {steps} steps")
    print(f"{'implementation':<16}{'ms/step (median)':>18}{'tokens/s':>12}{'vs pytorch':>12}")
    ref = statistics.median(times["pytorch eager"]) if "pytorch eager" in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{ref / med:.2f}x" if ref else "-"
        print(f"{name:<16}{med * 1000:>18.1f}{tokens / med:>12.0f}{ratio:>12}")


def full_run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MINROOTS_CACHE": os.path.join(tmp, "cache")}
        cmd = [sys.executable, "-m", "minroots", "train", "--out", os.path.join(tmp, "run")]
        print(f"\n$ minroots train   (default preset; {' '.join(cmd[1:])})", flush=True)
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit(f"minroots train failed with exit status {result.returncode}")
    out = result.stdout
    print(out.rstrip())
    m = re.search(r"validation loss ([\d.]+) nats/token, validation perplexity ([\d.]+)", out)
    loss, ppl = float(m.group(1)), float(m.group(2))
    print(f"\n{'target':<34}{'measured':>12}{'ok':>5}")
    for label, value, ok in (
        ("wall time, start to exit (<= 300 s)", f"{wall:.1f} s", wall <= 300),
        ("validation loss (< 1.8 nats/char)", f"{loss:.4f}", loss < 1.8),
        ("validation perplexity (< 6)", f"{ppl:.2f}", ppl < 6),
    ):
        print(f"{label:<34}{value:>12}{'yes' if ok else 'NO':>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round (10)")
    parser.add_argument("--no-full", action="store_true", help="skip the full `minroots train`")
    parser.add_argument("--no-throughput", action="store_true", help="skip the step comparison")
    args = parser.parse_args()
    if not args.no_throughput:
        throughput(args.rounds, args.steps)
    if not args.no_full:
        full_run()


if __name__ == "__main__":
    main()
