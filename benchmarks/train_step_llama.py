"""Benchmark: one training step of the Llama-style model, minroots vs transformers' LlamaForCausalLM
(eager attention) in PyTorch, same shapes and weights, interleaved, float32, 2 threads; and the
key/value cache's bytes per token for n_kv_head in {n_head, n_head / 2, 1}.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); results in
``benchmarks/README.md``.

Run:  python benchmarks/train_step_llama.py [--configs small large] [--steps 20] [--warmup 3]

A step is forward + cross-entropy + backward + AdamW. Both models start from the same weights
(minroots' Llama initialization, converted by :func:`minroots.nn.hf_weights.weights_to_hf`), and
their first losses must agree. Reported per config: tokens/s (median of the timed steps) and the
minroots/PyTorch ratio. The cache table is exact arithmetic on real caches (``KVCache.nbytes``
after a prefill), not a timing: 2 (K and V) x n_layer x n_kv_head x head_dim x 4 bytes per token.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

THREADS = "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minroots  # noqa: E402
from minroots.nn import TransformerConfig, TransformerModel  # noqa: E402
from minroots.nn.hf_config import config_to_hf  # noqa: E402
from minroots.nn.hf_weights import weights_to_hf  # noqa: E402
from minroots.optim import AdamW  # noqa: E402

# (model shape, batch): GQA with half as many key/value heads as query heads
CONFIGS = {
    "small": (
        dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_kv_head=2, n_embd=128),
        16,
    ),
    "large": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_kv_head=2, n_embd=384), 8),
}


def make_models(shape: dict, batch: int, seed: int = 0):
    """The minroots model and transformers' Llama with the same weights, and one batch."""
    import torch
    import transformers

    minroots.manual_seed(seed)
    model = TransformerModel(TransformerConfig.from_arch("llama", **shape))
    hf_config = transformers.LlamaConfig(**{k: v for k, v in config_to_hf(model.config, "llama").items()
                                            if k not in ("architectures", "model_type", "dtype",
                                                         "torch_dtype", "rope_theta")})  # fmt: skip
    hf = transformers.AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager")
    weights = {k: torch.from_numpy(v) for k, v in weights_to_hf(model, "llama").items()}
    hf.load_state_dict(weights, strict=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, shape["vocab_size"], (batch, shape["block_size"]))
    y = rng.integers(0, shape["vocab_size"], (batch, shape["block_size"]))
    return model, hf.train(), (x, y)


def step_minroots(model, data):
    opt = AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    x, y = data

    def step():
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def step_torch(hf, data):
    import torch

    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.1)
    x, y = (torch.from_numpy(a) for a in data)

    def step():
        logits = hf(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def run(config: str, steps: int, warmup: int) -> dict:
    shape, batch = CONFIGS[config]
    model, hf, data = make_models(shape, batch)
    fns = {"minroots": step_minroots(model, data), "torch": step_torch(hf, data)}
    first = {name: fn() for name, fn in fns.items()}  # the same weights and data: the same loss
    assert abs(first["minroots"] - first["torch"]) < 1e-3, first
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for i in range(steps):  # interleaved, alternating who goes first
        order = list(fns.items()) if i % 2 == 0 else list(fns.items())[::-1]
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    tokens = batch * shape["block_size"]
    res = {name: tokens / statistics.median(ts) for name, ts in times.items()}
    res["ratio"] = res["minroots"] / res["torch"]
    return res


def kv_cache_table(shape: dict, prefill: int = 64) -> list[tuple[int, float]]:
    """``(n_kv_head, bytes per token)`` of the key/value caches after a prefill, float32."""
    rows = []
    for n_kv in (shape["n_head"], shape["n_head"] // 2, 1):
        model = TransformerModel(
            TransformerConfig.from_arch("llama", **{**shape, "n_kv_head": n_kv})
        )
        caches = model.new_cache()
        with minroots.no_grad():
            model.hidden_states(np.zeros((1, prefill), dtype=np.int64), caches)
        rows.append((n_kv, sum(c.nbytes for c in caches) / prefill))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "large"], choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    import torch
    import transformers

    torch.set_num_threads(int(THREADS))
    print(f"threads={THREADS}  numpy {np.__version__}  torch {torch.__version__}  "
          f"transformers {transformers.__version__}")  # fmt: skip
    print(f"{'config':<7} {'minroots tok/s':>15} {'transformers tok/s':>19}  ratio")
    for config in args.configs:
        r = run(config, args.steps, args.warmup)
        print(f"{config:<7} {r['minroots']:15.0f} {r['torch']:19.0f}  {r['ratio']:.2f}x")
    for config in args.configs:
        shape = CONFIGS[config][0]
        print(f"\nKV cache, {config} ({shape['n_layer']} layers, {shape['n_head']} query heads "
              f"of {shape['n_embd'] // shape['n_head']}), float32:")  # fmt: skip
        rows = kv_cache_table(shape)
        for n_kv, per_token in rows:
            print(f"  n_kv_head={n_kv:<2} {per_token:8.0f} bytes/token  "
                  f"({rows[0][1] / per_token:.0f}x less than n_kv_head=n_head)")  # fmt: skip


if __name__ == "__main__":
    main()
