#!/usr/bin/env bash
# Runs every test of the project: unit and end-to-end tests of the server and the shared
# crate, the web page's unit tests, a short load-generator smoke run, and the browser tests.
# Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# wasm-opt from npm (installed by scripts/setup.sh) for trunk's release build.
export PATH="$PWD/frontend/tools/node_modules/.bin:$PATH"

scripts/setup.sh test

echo "== cargo test (workspace)"
cargo test --workspace

echo "== the web page (trunk build --release --offline)"
trunk build --release --offline

echo "== load generator smoke run"
scripts/smoke-loadgen.sh

echo "== browser end-to-end tests (headless Chromium over WebDriver)"
cargo test -p chat-e2e --tests -- --ignored --test-threads=1
