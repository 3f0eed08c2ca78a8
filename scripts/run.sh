#!/usr/bin/env bash
# Builds everything and starts the chat server with the web page, on a fresh machine too:
# installs what is missing (scripts/setup.sh run), builds the page with trunk and the server in
# release mode, then runs the server. Extra arguments go to chat-server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# wasm-opt from npm (installed by scripts/setup.sh) for trunk's release build.
export PATH="$PWD/frontend/tools/node_modules/.bin:$PATH"

scripts/setup.sh run
trunk build --release --offline
cargo build --release -p chat-server
echo
bind="${CHAT_BIND:-0.0.0.0:8973}"
prev=""
for arg in "$@"; do
  case "$prev" in --bind) bind="$arg" ;; esac
  case "$arg" in --bind=*) bind="${arg#--bind=}" ;; esac
  prev="$arg"
done
echo "Open http://localhost:${bind##*:}/ in a browser; legacy pages use the same address."
echo
exec target/release/chat-server "$@"
