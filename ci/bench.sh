#!/usr/bin/env bash
# The benchmark suites (peak, GEMM, recurrent layers), JSON in bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."

. ci/setup.sh

mkdir -p bench-results
cargo run --release -p recur-bench -- peak --json bench-results/peak.json
cargo run --release -p recur-bench -- gemm --json bench-results/gemm.json
cargo run --release -p recur-bench -- rnn --json bench-results/rnn.json "$@"
cargo run --release -p recur-bench -- scan --json bench-results/scan.json "$@"
