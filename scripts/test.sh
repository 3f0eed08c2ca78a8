#!/usr/bin/env bash
# Runs every test of the project: unit and end-to-end tests of the server and the shared
# crate, the web page's unit tests, a short load-generator smoke run, and the browser tests.
# Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh test

echo "== cargo test (workspace)"
cargo test --workspace

if [ -f Trunk.toml ] && [ -d frontend/src ]; then
  echo "== the web page (trunk build --release --offline)"
  trunk build --release --offline
fi

if [ -x scripts/smoke-loadgen.sh ]; then
  echo "== load generator smoke run"
  scripts/smoke-loadgen.sh
fi

if [ -d e2e ] && [ -f e2e/Cargo.toml ]; then
  echo "== browser end-to-end tests"
  cargo test --manifest-path e2e/Cargo.toml -- --test-threads=1
fi
