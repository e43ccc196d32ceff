#!/usr/bin/env bash
# The test command: installs what the tests need (ci/setup.sh: a Vulkan
# driver, Rust), checks formatting and lints, then runs the whole
# workspace's tests on whatever adapter wgpu finds (Mesa's lavapipe on a
# machine without a GPU), and the runtime and kernel tests once more on
# wgpu's GL backend.
set -euo pipefail
cd "$(dirname "$0")/.."

. ci/setup.sh

# Under CI a missing adapter must fail the GPU tests, not skip them.
export CI="${CI:-true}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# The same kernels and runtime on wgpu's GL backend (Mesa llvmpipe over
# surfaceless EGL): proves the GL path, which has no subgroups or f16
# (the f16 tests check the typed error and the f32 fallback there).
RECUR_BACKEND=gl cargo test --workspace --test kernels --test runtime --test scan --test engine --test f16 --test selective_scan --test conv1d
