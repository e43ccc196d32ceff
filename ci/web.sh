#!/usr/bin/env bash
# recur in the browser.
#   ci/web.sh build   builds crates/recur-web for wasm32 and binds it for the
#                     page (web/pkg), and bundles the training text (web/corpus.txt)
#   ci/web.sh serve   builds, then serves web/ on http://127.0.0.1:${PORT:-8040}/
#   ci/web.sh test    builds, serves on loopback and runs the page's tests in
#                     headless Chromium with WebGPU (web/test.mjs): the kernel
#                     checks and a training run in test mode, then the
#                     interactive page training, streaming and loading a
#                     checkpoint char_lm wrote; screenshots in target/web.
#                     Non-zero on any failure.
# Installs what it needs: the wasm32 target, wasm-bindgen-cli (the version in
# Cargo.lock), Debian's chromium and the driver's npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi

apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

build() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown
  local want
  want="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
    echo "web: installing wasm-bindgen-cli $want (a few minutes, once)"
    cargo install -q wasm-bindgen-cli --version "$want"
  fi
  cargo build --release --target wasm32-unknown-unknown -p recur-web
  rm -rf web/pkg
  wasm-bindgen --target web --no-typescript --out-dir web/pkg \
    target/wasm32-unknown-unknown/release/recur_web.wasm
  # The text the page trains on: recur's own prose, shipped with the page.
  cat README.md docs/ARCHITECTURE.md > web/corpus.txt
  echo "web: built web/pkg ($(du -h web/pkg/recur_web_bg.wasm | cut -f1) of wasm)"
}

serve_bg() {
  python3 -m http.server --bind 127.0.0.1 --directory web "$1" >/dev/null 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$1/index.html" >/dev/null && return 0
    sleep 0.1
  done
  echo "web: the server on port $1 did not come up" >&2
  return 1
}

case "${1:-}" in
  build) build ;;
  serve)
    build
    port="${PORT:-8040}"
    echo "web: http://127.0.0.1:$port/ (add ?test for the browser tests); Ctrl-C stops"
    exec python3 -m http.server --bind 127.0.0.1 --directory web "$port"
    ;;
  test)
    build
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    command -v node >/dev/null 2>&1 || apt_install nodejs npm
    (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    port="${PORT:-8041}"
    serve_bg "$port"
    mkdir -p target/web
    # A checkpoint written by char_lm, for the page's file input.
    cargo run -q --example char_lm -- --model gru --hidden 32 --layers 1 \
      --embed 16 --steps 5 --batch 4 --k1 16 --k2 16 --eval-every 5 --sample 8 \
      --checkpoint target/web/char_lm.safetensors --plot target/web/char_lm_loss >/dev/null
    # The driver reads the results from the page; screenshots in target/web.
    node web/test.mjs "http://127.0.0.1:$port" target/web target/web/char_lm.safetensors "${WEB_TIMEOUT:-600}"
    ;;
  *)
    echo "usage: ci/web.sh build|serve|test" >&2
    exit 2
    ;;
esac
