#!/usr/bin/env bash
# Builds everything and starts the chat server with the web page, on a fresh machine too:
# installs what is missing (scripts/setup.sh run), builds the page with trunk and the server in
# release mode, then runs the server. Extra arguments go to chat-server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh run
trunk build --release --offline
cargo build --release -p chat-server
echo
echo "Open the address of the 'listening on http://...' line below in a browser"
echo "(on this machine: http://localhost:<its port>/); legacy pages use the same address."
echo
exec target/release/chat-server "$@"
