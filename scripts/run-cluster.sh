#!/usr/bin/env bash
# Runs the chat as a small cluster on this machine: redis-server (deploy/redis.conf), two
# chat-server instances sharing it (--backend redis://…), and nginx in front of them
# (deploy/nginx.conf) on the chat's usual port, 8973. Installs what is missing first (Redis and
# nginx from Debian's packages, the web page's tools) and builds the page and the server.
# Ctrl-C stops everything. Everything it writes goes to a temporary folder, printed at start.
#
# Usage: scripts/run-cluster.sh [INSTANCES]   (default 2; each instance takes the next port)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"
# wasm-opt from npm (installed by scripts/setup.sh) for trunk's release build.
export PATH="$PWD/frontend/tools/node_modules/.bin:$PATH"

instances="${1:-2}"
listen_port=8973
redis_port=6390
first_instance_port=8974

for port in "$listen_port" "$redis_port" $(seq "$first_instance_port" $((first_instance_port + instances - 1))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: stop what listens there first" >&2
    exit 1
  fi
done

scripts/setup.sh cluster
scripts/setup.sh run
trunk build --release --offline
cargo build --release -p chat-server

run="$(mktemp -d -t chat-cluster-XXXXXX)"
echo "[cluster] files and logs in $run"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1; see the logs in $run" >&2
  return 1
}

mkdir -p "$run/redis"
redis-server deploy/redis.conf --port "$redis_port" --dir "$run/redis" \
  --logfile "$run/redis.log" --daemonize no &
pids+=("$!")
wait_for_port "$redis_port"

upstreams=""
for n in $(seq 0 $((instances - 1))); do
  port=$((first_instance_port + n))
  target/release/chat-server --bind "127.0.0.1:$port" --data-dir "$run/instance-$n" \
    --backend "redis://127.0.0.1:$redis_port/0" --trusted-proxy 127.0.0.1 \
    2>"$run/instance-$n.log" &
  pids+=("$!")
  wait_for_port "$port"
  upstreams+="        server 127.0.0.1:$port max_fails=0;"$'\n'
done

mkdir -p "$run/nginx/tmp"
python3 - "$run/nginx/nginx.conf" "127.0.0.1:$listen_port" "$upstreams" <<'PY'
import sys
path, listen, upstreams = sys.argv[1], sys.argv[2], sys.argv[3]
conf = open("deploy/nginx.conf").read()
conf = conf.replace("@@LISTEN@@", listen).replace("@@UPSTREAM_SERVERS@@", upstreams.rstrip("\n"))
open(path, "w").write(conf)
PY
nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" &
pids+=("$!")
wait_for_port "$listen_port"

echo
echo "Open http://localhost:$listen_port/ in a browser; legacy pages use the same address."
echo "$instances instances behind nginx share Redis on port $redis_port. Ctrl-C stops everything."
wait
