#!/usr/bin/env bash
# recur beside PyTorch CUDA on this machine's NVIDIA GPU, one command:
# builds recur-bench (release), runs its suites with cooperative matrices
# opted in, runs tools/torch_cuda_bench.py at the same shapes, and prints one
# table of ratios (tools/bench_compare.py), also written to
# $OUT_DIR/compare.md beside every JSON file.
#
#   bash ci/gpu-bench.sh [--quick]
#
# Needs python3 with PyTorch (CUDA). RECUR_BENCH_BIN=path skips the build
# (a binary built elsewhere); PYTHON picks the interpreter; RECUR_ADAPTER
# picks the adapter by name when several are present.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT_DIR:-bench-results/gpu}
python=${PYTHON:-python3}
mkdir -p "$out"
export RECUR_COOPERATIVE_MATRIX=${RECUR_COOPERATIVE_MATRIX:-1}

bin=${RECUR_BENCH_BIN:-}
if [ -z "$bin" ]; then
  . ci/setup.sh
  cargo build --release -p recur-bench
  bin=target/release/recur-bench
fi

"$python" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print("PyTorch", torch.__version__, torch.cuda.get_device_name())'
for suite in peak gemm rnn scan attention mamba; do
  echo "== recur-bench $suite"
  "$bin" "$suite" --json "$out/recur-$suite.json" "$@" || echo "recur-bench $suite failed" >&2
done
echo "== PyTorch CUDA"
"$python" tools/torch_cuda_bench.py --json "$out/torch_cuda.json" "$@"
"$python" tools/bench_compare.py --peer "$out/torch_cuda.json" "$out"/recur-*.json --md "$out/compare.md"
