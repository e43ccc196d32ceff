#!/usr/bin/env bash
# The main job: train a character-level LSTM language model on the bundled
# corpus (recur's own sources) on the GPU — or on lavapipe without one — and
# print validation loss and a generated sample. Extra arguments go to the
# example (e.g. --data ../shared/data/tinyshakespeare.txt --steps 2000).
# Installs what it needs first (ci/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

. ci/setup.sh

cargo run --release --example char_lm -- "$@"
