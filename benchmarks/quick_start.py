"""Benchmark the README's Python quick start as it is printed: wall time and final perplexity.

Book chapter 7, "Training" (``book/07_training.md``).

The quick start writes out the main job (``minroots train``, the default preset) with the
library's classes, so it should end at the same validation perplexity (about 4.8, target < 6) in
the same time (target <= 300 s on 2 cores). This script takes the README's first Python block,
the one that trains, runs it in a fresh process in a temporary folder (its own token cache, so
the first tokenizing is counted, as for a new user), and reports both numbers against the
targets. ``--steps N`` replaces the README's step count, for a smoke run.

Run::

    python benchmarks/quick_start.py              # the real run (a few minutes on an idle machine)
    python benchmarks/quick_start.py --steps 20   # smoke run (seconds; the targets do not apply)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
STEPS = "max_steps=1700"  # the README's step count, as printed there


def quick_start_code(steps: int | None) -> str:
    """The README's Python block that trains, with ``steps`` steps if given."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    code = next(b for b in blocks if ".train()" in b)
    if steps is not None:
        if STEPS not in code:
            raise SystemExit(f"README.md's quick start has no {STEPS!r}; update this script")
        code = code.replace(STEPS, f"max_steps={steps}")
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="replace the README's 1700 steps")
    args = parser.parse_args()
    code = quick_start_code(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MINROOTS_CACHE": os.path.join(tmp, "cache"), "MPLBACKEND": "Agg"}
        print(f"README quick start, {args.steps or 1700} steps, in a fresh process", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, cwd=tmp)  # fmt: skip
        wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit(f"the quick start failed with exit status {result.returncode}")
    print(result.stdout.rstrip())
    ppl = float(re.search(r"validation perplexity ([\d.]+)", result.stdout).group(1))
    full = args.steps is None
    print(f"\n{'target (the main job)':<34}{'measured':>12}{'ok':>5}")
    for label, value, ok in (
        ("wall time, start to exit (<= 300 s)", f"{wall:.1f} s", wall <= 300),
        ("validation perplexity (< 6)", f"{ppl:.2f}", ppl < 6),
    ):
        print(f"{label:<34}{value:>12}{('yes' if ok else 'NO') if full else '-':>5}")
    if not full:
        print("(a smoke run: the targets apply to the full 1700 steps)")


if __name__ == "__main__":
    main()
