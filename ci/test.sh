#!/usr/bin/env bash
# The test command: installs what the tests need (a Vulkan driver), checks
# formatting and lints, then runs the whole workspace's tests on whatever
# adapter wgpu finds (Mesa's lavapipe on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-vulkan.sh

if ! command -v cargo >/dev/null 2>&1; then
  if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "ci/test.sh: installing Rust with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
  . "$HOME/.cargo/env"
fi

# Under CI a missing adapter must fail the GPU tests, not skip them.
export CI="${CI:-true}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# The same kernels and runtime on wgpu's GL backend (Mesa llvmpipe over
# surfaceless EGL): proves the GL path, which has no subgroups or f16.
RECUR_BACKEND=gl cargo test -p recur-gpu --test kernels --test runtime
