#!/usr/bin/env bash
# The GPU check of chapter 13 (issue 17): one prepared script for a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, or from anywhere
#
# 1. installs the "gpu" extra (CuPy) unless CuPy already imports (then only minroots itself is
#    put on the path: an offline GPU machine with its own CuPy needs no network);
# 2. runs every `gpu`-marked test (tests/), and the one-GPU NCCL communicator test on its own;
# 3. runs the train-step benchmark, minroots on CuPy against PyTorch CUDA eager, on the "large"
#    config and on "xl" (GPT-2 small's 12 x 768 body, context 1024, which fills a GPU better),
#    in float32, then "large" in bf16 and fp16 autocast;
# 4. appends the results, dated and with the GPU's name, to benchmarks/README.md, and writes the
#    same section and every log into $OUT (default benchmarks/gpu_results/).
#
# Each stage has its own time limit (STAGE_SECONDS, default 240 s), so that one slow stage leaves
# the others their turn; the whole script is meant to end within about 10 minutes. The exit status
# is that of the gpu tests (0: all passed or skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/benchmarks/gpu_results}
PY=${PYTHON:-python3}
STAGE=${STAGE_SECONDS:-240}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HYPOTHESIS_PROFILE=ci
export MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MINROOTS_CACHE=/tmp/minroots-gpu-cache
log() { echo "== $*" | tee -a "$OUT/gpu_check.log"; }

log "1. install: CuPy, then minroots"
if ! "$PY" -c "import cupy" 2>/dev/null; then
    "$PY" -m pip install -q -e ".[gpu]" 2>&1 | tee -a "$OUT/gpu_check.log"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    | tee "$OUT/gpu_name.txt" | tee -a "$OUT/gpu_check.log"
"$PY" - <<'EOF' 2>&1 | tee "$OUT/versions.txt" | tee -a "$OUT/gpu_check.log"
import sys, numpy, cupy, minroots, minroots.backend as B
print("python", sys.version.split()[0], "| numpy", numpy.__version__, "| cupy", cupy.__version__,
      "| minroots", minroots.__version__, "from", minroots.__file__)
print("cupy sees a GPU:", B.cupy_available())
for name in ("fp16", "bf16"):
    try:
        print(name, "on cuda:", B.half_dtype(name, "cuda"))
    except RuntimeError as exc:
        print(name, "on cuda: unavailable:", exc)
try:
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available())
except ImportError:
    print("torch: not installed (the benchmark's reference is skipped)")
EOF

log "2. every gpu-marked test"
# addopts are replaced: the notebook plug-in (nbmake) may be missing on a GPU image
timeout "$STAGE" "$PY" -m pytest -p no:cacheprovider -o addopts="" -ra --strict-markers -m gpu \
    tests/ 2>&1 | tee "$OUT/gpu_tests.log"
TESTS=${PIPESTATUS[0]}
log "   gpu tests exit status: $TESTS"

log "2b. the one-GPU NCCL communicator test"
timeout 120 "$PY" -m pytest -p no:cacheprovider -o addopts="" -ra -m gpu -v \
    tests/test_distributed.py -k "nccl" 2>&1 | tee "$OUT/nccl_test.log"

bench() {  # name, arguments of benchmarks/train_step.py
    local name=$1; shift
    log "3. train step: $name"
    timeout "$STAGE" "$PY" benchmarks/train_step.py --device cuda "$@" 2>&1 | tee "$OUT/$name.txt"
}
bench train_step_float32_large --configs large --steps 20 --warmup 3
bench train_step_float32_xl --configs xl --steps 10 --warmup 2
bench train_step_bf16_large --configs large --steps 20 --warmup 3 --precision bf16
bench train_step_fp16_large --configs large --steps 20 --warmup 3 --precision fp16

log "4. results -> benchmarks/README.md and $OUT/gpu_section.md"
{
    echo
    echo "### GPU check: $(cut -d, -f1 "$OUT/gpu_name.txt" | head -1), $(date -u +%Y-%m-%d)"
    echo
    echo "\`bash benchmarks/gpu_check.sh\` on $(head -1 "$OUT/gpu_name.txt");"
    echo "$(head -1 "$OUT/versions.txt")."
    echo
    summary() { grep -E '(passed|failed|error|skipped)' "$1" | tail -1 | grep . || echo "no summary line: see $(basename "$1")"; }
    echo "gpu-marked tests (exit status $TESTS): \`$(summary "$OUT/gpu_tests.log")\`"
    echo
    echo "One-GPU NCCL test: \`$(summary "$OUT/nccl_test.log")\`"
    for name in train_step_float32_large train_step_float32_xl train_step_bf16_large train_step_fp16_large; do
        echo
        echo "\`python benchmarks/train_step.py --device cuda\` ($name):"
        echo
        echo '```text'
        grep -vE '^(==|\s*$)' "$OUT/$name.txt" | tail -6
        echo '```'
    done
} > "$OUT/gpu_section.md"
cat "$OUT/gpu_section.md" >> "$ROOT/benchmarks/README.md"
cat "$OUT/gpu_section.md"
exit "$TESTS"
