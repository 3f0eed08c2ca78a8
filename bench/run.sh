#!/usr/bin/env bash
# The side-by-side benchmark, one command: our server (release build, fresh temp data folder),
# the HTTP stack alone (httpref), and nginx + nchan, measured one after another on this machine
# with the same loadgen scenarios. Writes bench/results/<date>/*.json and prints the table that
# goes into BENCHMARKS.md (also saved as bench/results/<date>/table.md).
#
# Sizes can be changed through the environment: POLLERS (10000), RATE (0.5: one message fanned
# out at a time, every 2 s), FANOUT_SECONDS (20),
# PUSHERS (64), PUSH_SECONDS (10), HISTORY (100000), IDLE_SECONDS (10).
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

POLLERS="${POLLERS:-10000}"
RATE="${RATE:-0.5}"
FANOUT_SECONDS="${FANOUT_SECONDS:-20}"
PUSHERS="${PUSHERS:-64}"
PUSH_SECONDS="${PUSH_SECONDS:-10}"
HISTORY="${HISTORY:-100000}"
IDLE_SECONDS="${IDLE_SECONDS:-10}"

if ! [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
  # The package starts a system nginx on port 80; the benchmark does not need it.
  systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || true
fi
cargo build --release -q -p chat-server -p loadgen

stamp="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
out="bench/results/$stamp"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

loadgen() { target/release/loadgen --json "$@"; }
wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

for port in 8973 8975 8980; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use (a chat-server started by scripts/run.sh?): stop it first" >&2
    exit 1
  fi
done

echo "== ours: chat-server (release)"
target/release/chat-server --bind 127.0.0.1:8973 --data-dir "$work/data" \
  --push-burst 100000000 --push-rate 100000000 --max-polls-per-ip 100000 --max-polls 50000 \
  2>"$work/chat-server.log" &
ours=$!
pids+=("$ours")
wait_for_port 8973
loadgen --url http://127.0.0.1:8973/ idle --pollers "$POLLERS" --duration "$IDLE_SECONDS" --server-pid "$ours" >"$out/ours-idle.json"
loadgen --url http://127.0.0.1:8973/ fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/ours-fanout.json"
loadgen --url http://127.0.0.1:8973/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" >"$out/ours-push.json"
loadgen --url http://127.0.0.1:8973/ catchup --history "$HISTORY" --seeders "$PUSHERS" >"$out/ours-catchup.json"
kill -TERM "$ours"; wait "$ours" || true

echo "== the HTTP stack alone: httpref"
target/release/httpref 127.0.0.1:8975 >/dev/null &
pids+=("$!")
wait_for_port 8975
loadgen --url http://127.0.0.1:8975/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" --no-verify >"$out/httpref-push.json"
kill "${pids[-1]}"

echo "== theirs: nginx + nchan"
mkdir -p "$work/nginx/tmp"
nginx -p "$work/nginx" -c "$PWD/bench/nginx-nchan.conf" &
nginx_master=$!
pids+=("$nginx_master")
wait_for_port 8980
sleep 0.5
worker_args=()
for pid in $(pgrep -P "$nginx_master"); do worker_args+=(--server-pid "$pid"); done
loadgen --protocol nchan --url http://127.0.0.1:8980 idle --pollers "$POLLERS" --duration "$IDLE_SECONDS" "${worker_args[@]}" >"$out/nchan-idle.json"
loadgen --protocol nchan --url http://127.0.0.1:8980 fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/nchan-fanout.json"
kill -QUIT "$nginx_master" 2>/dev/null || true

{
  echo "Run $stamp on $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; loadgen on the same machine."
  echo
  python3 bench/table.py "$out"
} | tee "$out/table.md"
