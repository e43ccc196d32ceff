#!/usr/bin/env bash
# The test command: installs what the tests need (ci/setup.sh: a Vulkan
# driver, Rust), checks formatting and lints, then runs the whole
# workspace's tests on whatever adapter wgpu finds (Mesa's lavapipe on a
# machine without a GPU), the runtime and kernel tests once more on wgpu's
# GL backend, and the browser build: recur-gpu, recur-nn and the page's
# crate linted for wasm32, then the page's tests in headless Chromium on
# WebGPU (ci/web.sh test, which installs Chromium and wasm-bindgen).
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

# The browser: the library crates build (and lint clean) for wasm32, where
# nothing may block, and the page passes its tests in a real browser.
rustup target list --installed | grep -qx wasm32-unknown-unknown ||
  rustup target add wasm32-unknown-unknown
cargo clippy --target wasm32-unknown-unknown -p recur-gpu -p recur-nn -p recur-web -- -D warnings
bash ci/web.sh test
