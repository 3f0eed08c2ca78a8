#!/usr/bin/env bash
# A short load-generator run against a freshly started server (debug build, temp data folder):
# 200 pollers for 2 s of fan-out (in this process, then spread over two child processes from
# 127.0.0.2 and 127.0.0.3, as bench/run.sh's larger sizes are), a 1 s push run, a 1000-message catch-up, 2 s of idle polls and
# 2 s of pushes beside two clients flooding 60 KB queries (every flood request must be refused);
# then 200 pollers against `httpref --long-poll`, the benchmark's actix-web-alone reference,
# with its CPU time per delivery.
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
ref_pid=""
trap 'kill "$server_pid" $ref_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data_dir"' EXIT

# The URL a server printed ("listening on http://ADDR/") in the file $1.
url_in() {
  local found=""
  for _ in $(seq 1 100); do
    found="$(grep -o 'listening on http://[0-9.:]*/' "$1" | head -n1 | sed 's/listening on //' || true)"
    [ -n "$found" ] && break
    sleep 0.1
  done
  [ -n "$found" ] || { echo "the server did not start:" >&2; cat "$1" >&2; return 1; }
  echo "$found"
}
url="$(url_in "$log")"

run() { echo "-- loadgen $*"; target/debug/loadgen --url "$url" "$@"; }
run fanout --pollers 200 --rate 5 --duration 2 --grace 10
run fanout --pollers 200 --processes 2 --server-pid "$server_pid" --rate 5 --duration 2 --grace 10
run push --concurrency 8 --duration 1
run catchup --history 1000 --seeders 8
run idle --pollers 200 --duration 2 --server-pid "$server_pid"
run flood --flooders 2 --pushers 2 --duration 2
target/debug/httpref 127.0.0.1:0 --long-poll >"$data_dir/httpref.log" &
ref_pid=$!
ref_url="$(url_in "$data_dir/httpref.log")"
echo "-- loadgen (httpref --long-poll) fanout --pollers 200 --server-pid $ref_pid"
target/debug/loadgen --json --url "$ref_url" fanout --pollers 200 --rate 5 --duration 2 --grace 10 \
  --server-pid "$ref_pid" >"$data_dir/httpref-fanout.json"
grep -q '"server_user_cpu_per_delivery"' "$data_dir/httpref-fanout.json" \
  || { echo "no CPU time per delivery in the report:"; cat "$data_dir/httpref-fanout.json"; exit 1; }
echo "loadgen smoke run: 7 passed, 0 failed"
