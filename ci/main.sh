#!/usr/bin/env bash
# The main job, for now: measure this adapter's FMA and copy peaks, then the
# GEMM suite (tiled, blocked and naive kernels side by side), and write the
# records to bench-results/*.json. Installs what it needs first (ci/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

. ci/setup.sh

mkdir -p bench-results
cargo run --release -p recur-bench -- peak --json bench-results/peak.json
cargo run --release -p recur-bench -- gemm --json bench-results/gemm.json "$@"
