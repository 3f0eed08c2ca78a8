#!/usr/bin/env bash
# The side-by-side benchmark, one command: our server (release build, fresh temp data folder),
# the HTTP stack alone (httpref: answering at once, then long polling in memory), and
# nginx + nchan, measured one after another on this machine with the same loadgen scenarios.
# Writes bench/results/<date>/*.json and prints the table that goes into BENCHMARKS.md (also
# saved as bench/results/<date>/table.md).
#
# Sizes can be changed through the environment: POLLERS (10000), RATE (0.5: one message fanned
# out at a time, every 2 s), FANOUT_SECONDS (20), LARGE_SIZES ("20000 50000": the larger
# fan-outs, see below; empty to skip them), WAKE_SECONDS (10: one held pop woken 20 times a second),
# PUSHERS (64), PUSH_SECONDS (10), PUSH_ROUNDS (4: pairs of ours and the HTTP stack alone),
# HISTORY (100000), IDLE_SECONDS (10), FLOODERS (4: clients
# sending 60 KB queries of 15 000 keys beside normal pushes), FLOOD_SECONDS (10).
# The Redis backend is measured in the same run: one instance, then two behind nginx
# (deploy/redis.conf, deploy/nginx.conf), and the wake-up of a held pop on another instance.
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

POLLERS="${POLLERS:-10000}"
RATE="${RATE:-0.5}"
FANOUT_SECONDS="${FANOUT_SECONDS:-20}"
PUSHERS="${PUSHERS:-64}"
PUSH_SECONDS="${PUSH_SECONDS:-10}"
PUSH_ROUNDS="${PUSH_ROUNDS:-4}"
HISTORY="${HISTORY:-100000}"
IDLE_SECONDS="${IDLE_SECONDS:-10}"
WAKE_SECONDS="${WAKE_SECONDS:-10}"
LARGE_SIZES="${LARGE_SIZES-20000 50000}"
# PARTS: "main" (everything before the larger fan-outs) and "large" (those); both by default.
PARTS="${PARTS:-main large}"
FLOODERS="${FLOODERS:-4}"
FLOOD_SECONDS="${FLOOD_SECONDS:-10}"

scripts/setup.sh cluster
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

# Starts nginx + nchan with prefix $1, configuration $2 and $3 worker processes; sets
# nginx_master and worker_args (--server-pid of each worker, for loadgen's memory figures).
start_nchan() {
  mkdir -p "$1/tmp"
  nginx -p "$1" -c "$2" &
  nginx_master=$!
  pids+=("$nginx_master")
  wait_for_port 8980
  # The master forks its workers after it listens.
  for _ in $(seq 1 50); do
    [ "$(pgrep -c -P "$nginx_master")" -ge "$3" ] && break
    sleep 0.1
  done
  worker_args=()
  for pid in $(pgrep -P "$nginx_master"); do worker_args+=(--server-pid "$pid"); done
}

for port in 8973 8975 8976 8977 8978 8980 8990; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use (a chat-server started by scripts/run.sh?): stop it first" >&2
    exit 1
  fi
done

redis_flags=(--backend redis://127.0.0.1:8990/0 --trusted-proxy 127.0.0.1
  --push-burst 100000000 --push-rate 100000000 --max-polls-per-ip 100000 --max-polls 50000)

if [[ " $PARTS " == *" main "* ]]; then
echo "== ours: chat-server (release)"
target/release/chat-server --bind 127.0.0.1:8973 --data-dir "$work/data" \
  --push-burst 100000000 --push-rate 100000000 --max-polls-per-ip 100000 --max-polls 50000 \
  2>"$work/chat-server.log" &
ours=$!
pids+=("$ours")
wait_for_port 8973
loadgen --url http://127.0.0.1:8973/ idle --pollers "$POLLERS" --duration "$IDLE_SECONDS" --server-pid "$ours" >"$out/ours-idle.json"
loadgen --url http://127.0.0.1:8973/ fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" --server-pid "$ours" >"$out/ours-fanout.json"
loadgen --url http://127.0.0.1:8973/ catchup --history "$HISTORY" --seeders "$PUSHERS" >"$out/ours-catchup.json"
kill -TERM "$ours"; wait "$ours" || true

# Durable pushes against the HTTP stack alone (httpref, answering at once), back to back in
# PUSH_ROUNDS rounds (ours, httpref, then httpref, ours, and so on), each on a fresh server:
# the rate moves with the machine more than with either server, so the ratio is taken from
# pairs run side by side, in both orders so that a drift of the machine favours neither.
push_ours() {
  target/release/chat-server --bind 127.0.0.1:8973 --data-dir "$work/push$1" \
    --push-burst 100000000 --push-rate 100000000 2>"$work/push$1.log" &
  pids+=("$!")
  wait_for_port 8973
  loadgen --url http://127.0.0.1:8973/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" >"$out/ours-push$2.json"
  kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
}
push_httpref() {
  target/release/httpref 127.0.0.1:8975 >/dev/null &
  pids+=("$!")
  wait_for_port 8975
  loadgen --url http://127.0.0.1:8975/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" --no-verify >"$out/httpref-push$1.json"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}
for round in $(seq 1 "$PUSH_ROUNDS"); do
  # Round 1's files keep their old names (no suffix): the main table reads them.
  suffix=$([ "$round" = 1 ] && echo "" || echo "-$round")
  if [ $((round % 2)) = 1 ]; then
    echo "== durable pushes, round $round of $PUSH_ROUNDS: ours, then the HTTP stack alone (httpref)"
    push_ours "$round" "$suffix"
    push_httpref "$suffix"
  else
    echo "== durable pushes, round $round of $PUSH_ROUNDS: the HTTP stack alone (httpref), then ours"
    push_httpref "$suffix"
    push_ours "$round" "$suffix"
  fi
done

echo "== ours: the wake-up of one held pop (local folder)"
target/release/chat-server --bind 127.0.0.1:8973 --data-dir "$work/wake" \
  --push-burst 100000000 --push-rate 100000000 2>"$work/wake.log" &
pids+=("$!")
wait_for_port 8973
loadgen --url http://127.0.0.1:8973/ fanout --pollers 1 --rate 20 --duration "$WAKE_SECONDS" >"$out/ours-wake.json"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true

echo "== ours: normal pushes and a held pop, without and beside a query flood (issue 7 A4)"
target/release/chat-server --bind 127.0.0.1:8973 --data-dir "$work/flood" \
  --push-burst 100000000 --push-rate 100000000 2>"$work/flood.log" &
pids+=("$!")
wait_for_port 8973
loadgen --url http://127.0.0.1:8973/ flood --flooders 0 --duration "$FLOOD_SECONDS" >"$out/ours-flood-baseline.json"
loadgen --url http://127.0.0.1:8973/ flood --flooders "$FLOODERS" --duration "$FLOOD_SECONDS" >"$out/ours-flood.json"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true

echo "== ours on Redis: one instance, then two behind nginx"
mkdir -p "$work/redis" "$work/nginx-chat/tmp"
redis-server deploy/redis.conf --port 8990 --dir "$work/redis" --logfile "$work/redis.log" &
pids+=("$!")
wait_for_port 8990
target/release/chat-server --bind 127.0.0.1:8976 --data-dir "$work/r1" "${redis_flags[@]}" 2>"$work/r1.log" &
pids+=("$!")
wait_for_port 8976
loadgen --url http://127.0.0.1:8976/ fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/redis1-fanout.json"
loadgen --url http://127.0.0.1:8976/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" >"$out/redis1-push.json"
target/release/chat-server --bind 127.0.0.1:8977 --data-dir "$work/r2" "${redis_flags[@]}" 2>"$work/r2.log" &
pids+=("$!")
wait_for_port 8977
# A held pop on the second instance, woken by a push on the first.
loadgen --url http://127.0.0.1:8977/ --publish-url http://127.0.0.1:8976/ fanout --pollers 1 --rate 20 --duration "$WAKE_SECONDS" >"$out/redis-wake-across.json"
python3 - "$work/nginx-chat/nginx.conf" <<'PY'
import sys
conf = open("deploy/nginx.conf").read()
conf = conf.replace("@@LISTEN@@", "127.0.0.1:8978").replace(
    "@@UPSTREAM_SERVERS@@",
    "        server 127.0.0.1:8976 max_fails=0;\n        server 127.0.0.1:8977 max_fails=0;")
open(sys.argv[1], "w").write(conf)
PY
nginx -p "$work/nginx-chat" -c "$work/nginx-chat/nginx.conf" &
pids+=("$!")
wait_for_port 8978
loadgen --url http://127.0.0.1:8978/ --health-url http://127.0.0.1:8976/ --health-url http://127.0.0.1:8977/ fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/redis2-fanout.json"
loadgen --url http://127.0.0.1:8978/ push --concurrency "$PUSHERS" --duration "$PUSH_SECONDS" >"$out/redis2-push.json"
for pid in "${pids[@]: -4}"; do kill -TERM "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true

echo "== actix-web alone, long polling: httpref --long-poll"
target/release/httpref 127.0.0.1:8975 --long-poll >/dev/null &
pids+=("$!")
wait_for_port 8975
loadgen --url http://127.0.0.1:8975/ fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" --server-pid "${pids[-1]}" >"$out/httpref-fanout.json"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

echo "== theirs: nginx + nchan"
start_nchan "$work/nginx" "$PWD/bench/nginx-nchan.conf" 2
# Each run on a channel of its own (see nchan_subscriber_first_message in the configuration).
loadgen --protocol nchan --url http://127.0.0.1:8980 --channel idle idle --pollers "$POLLERS" --duration "$IDLE_SECONDS" "${worker_args[@]}" >"$out/nchan-idle.json"
loadgen --protocol nchan --url http://127.0.0.1:8980 --channel fanout fanout --pollers "$POLLERS" --rate "$RATE" --duration "$FANOUT_SECONDS" "${worker_args[@]}" >"$out/nchan-fanout.json"
loadgen --protocol nchan --url http://127.0.0.1:8980 --channel wake fanout --pollers 1 --rate 20 --duration "$WAKE_SECONDS" >"$out/nchan-wake.json"
kill -QUIT "$nginx_master" 2>/dev/null || true
wait "$nginx_master" 2>/dev/null || true
fi

# The larger fan-outs. One process holds no more connections than its open-file limit, and
# that limit is a hard 20 000 here (root cannot raise it), so neither a single chat-server nor
# a single loadgen can hold 20 000 polls. Ours: one chat-server per 12 500 pollers on the Redis
# backend, the pollers spread evenly over them, the publisher on the first (the way the
# product grows past one process); theirs: nginx with as many worker processes. loadgen
# spreads its pollers over as many child processes, each from its own loopback address.
# A size whose run loses or repeats a message is reported as such in the table ("NO"), and
# the other sizes still run.
[[ " $PARTS " == *" large "* ]] || LARGE_SIZES=""
for size in $LARGE_SIZES; do
  instances=$(( (size + 12499) / 12500 ))
  echo "== $size held polls: ours on $instances instances over Redis, then nginx + nchan with $instances workers"
  rm -rf "$work/large" && mkdir -p "$work/large/redis" "$work/large/nginx/tmp"
  redis-server deploy/redis.conf --port 8990 --dir "$work/large/redis" --logfile "$work/large/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_for_port 8990
  large_pids=()
  url_args=()
  pid_args=()
  for i in $(seq 0 $((instances - 1))); do
    port=$((8981 + i))
    target/release/chat-server --bind "127.0.0.1:$port" --data-dir "$work/large/i$i" "${redis_flags[@]}" \
      2>"$work/large/i$i.log" &
    large_pids+=("$!")
    pids+=("$!")
    pid_args+=(--server-pid "$!")
    url_args+=(--poll-url "http://127.0.0.1:$port/" --health-url "http://127.0.0.1:$port/")
  done
  for i in $(seq 0 $((instances - 1))); do wait_for_port $((8981 + i)); done
  loadgen --url http://127.0.0.1:8981/ "${url_args[@]}" fanout --pollers "$size" --processes "$instances" \
    "${pid_args[@]}" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/ours-fanout-$size.json" || true
  for pid in "${large_pids[@]}" "$redis_pid"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${large_pids[@]}" "$redis_pid"; do wait "$pid" 2>/dev/null || true; done

  sed -e "s/^worker_processes .*/worker_processes $instances;/" \
    -e "s/worker_connections .*/worker_connections 19000;/" bench/nginx-nchan.conf >"$work/large/nginx.conf"
  start_nchan "$work/large/nginx" "$work/large/nginx.conf" "$instances"
  loadgen --protocol nchan --url http://127.0.0.1:8980 --channel "fanout-$size" fanout --pollers "$size" --processes "$instances" \
    "${worker_args[@]}" --rate "$RATE" --duration "$FANOUT_SECONDS" >"$out/nchan-fanout-$size.json" || true
  kill -QUIT "$nginx_master" 2>/dev/null || true
  wait "$nginx_master" 2>/dev/null || true
done

{
  echo "Run $stamp on $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; loadgen on the same machine."
  echo
  python3 bench/table.py "$out"
} | tee "$out/table.md"
