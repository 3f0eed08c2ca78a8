#!/usr/bin/env bash
# A short load-generator run against a freshly started server (debug build, temp data folder):
# 200 pollers for 2 s of fan-out (in this process, then spread over two child processes from
# 127.0.0.2 and 127.0.0.3, as bench/run.sh's larger sizes are), a 1 s push run, a 1000-message catch-up, 2 s of idle polls and
# 2 s of pushes beside two clients flooding 60 KB queries (every flood request must be refused).
# loadgen exits non-zero when any message is lost, duplicated or out of order. Not a benchmark:
# see bench/run.sh and BENCHMARKS.md for that.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p chat-server -p loadgen
data_dir="$(mktemp -d)"
log="$data_dir/server.log"
RUST_LOG=info target/debug/chat-server --bind 127.0.0.1:0 --data-dir "$data_dir/data" \
  --push-burst 1000000 --push-rate 1000000 --max-polls-per-ip 100000 --poll-timeout 5 2>"$log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$data_dir"' EXIT

url=""
for _ in $(seq 1 100); do
  url="$(grep -o 'listening on http://[0-9.:]*/' "$log" | head -n1 | sed 's/listening on //' || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:"; cat "$log"; exit 1; }

run() { echo "-- loadgen $*"; target/debug/loadgen --url "$url" "$@"; }
run fanout --pollers 200 --rate 5 --duration 2 --grace 10
run fanout --pollers 200 --processes 2 --server-pid "$server_pid" --rate 5 --duration 2 --grace 10
run push --concurrency 8 --duration 1
run catchup --history 1000 --seeders 8
run idle --pollers 200 --duration 2 --server-pid "$server_pid"
run flood --flooders 2 --pushers 2 --duration 2
echo "loadgen smoke run: 6 passed, 0 failed"
