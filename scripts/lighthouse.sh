#!/usr/bin/env bash
# Audits the release page with Lighthouse as a phone sees it (Lighthouse's defaults: mobile
# form factor, simulated throttling: 150 ms RTT, 1.6 Mbit/s, 4x CPU slowdown), served by the
# real chat-server on a free loopback port, and fails when a score is below its target:
# performance < 95, SEO < 100, accessibility or best practices < 90.
#
# Builds nothing: it audits frontend/dist as it is (`trunk build --release --offline` first)
# with the chat-server binary in CHAT_SERVER_BIN, else target/release/chat-server, else
# target/debug/chat-server. Lighthouse comes from e2e/lighthouse (`scripts/setup.sh test`
# installs it), Chromium from CHROME_PATH (default /usr/bin/chromium).
#
# Scores move with the machine's load (the CPU slowdown multiplies whatever else runs), so this
# is a benchmark-like audit, not part of scripts/test.sh. With RUNS > 1 every run is printed
# and the verdict is on the median of each score.
#
# Usage: scripts/lighthouse.sh [RUNS]     (default 1; reports in target/lighthouse/)
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-1}"
lighthouse=e2e/lighthouse/node_modules/.bin/lighthouse
chrome="${CHROME_PATH:-/usr/bin/chromium}"
reports=target/lighthouse

die() { printf 'lighthouse.sh: %s\n' "$*" >&2; exit 2; }

[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$runs'"
[ -x "$lighthouse" ] || die "$lighthouse is missing: run scripts/setup.sh test (or npm install in e2e/lighthouse)"
[ -x "$chrome" ] || die "$chrome is missing: install Debian's chromium, or set CHROME_PATH"
[ -f frontend/dist/index.html ] || die "frontend/dist is not built: run trunk build --release --offline"
server="${CHAT_SERVER_BIN:-}"
if [ -z "$server" ]; then
  for candidate in target/release/chat-server target/debug/chat-server; do
    if [ -x "$candidate" ]; then server="$candidate"; break; fi
  done
fi
[ -n "$server" ] && [ -x "$server" ] || die "no chat-server binary: cargo build --release -p chat-server, or set CHAT_SERVER_BIN"

work="$(mktemp -d -t chat-lighthouse-XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the kernel picks a free port and the server logs the address it got.
RUST_LOG=info "$server" --bind 127.0.0.1:0 --data-dir "$work/data" --static-dir frontend/dist \
  2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(grep -o 'listening on http://[0-9.:]*/' "$work/server.log" | head -n 1 | sed 's/^listening on //' || true)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited"; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/server.log" >&2; die "the server did not print its address within 30 s"; }

mkdir -p "$reports"
echo "Lighthouse $("$lighthouse" --version), $("$chrome" --version 2>/dev/null), server $server, page $url"
for run in $(seq 1 "$runs"); do
  CHROME_PATH="$chrome" "$lighthouse" "$url" --quiet \
    --chrome-flags="--headless=new --no-sandbox" \
    --only-categories=performance,accessibility,best-practices,seo \
    --output=json --output=html --output-path="$reports/run-$run" >/dev/null
done

# One line per run, then the medians and the verdict.
node - "$reports" "$runs" <<'EOF'
const fs = require('fs');
const [dir, runs] = [process.argv[2], Number(process.argv[3])];
const keys = ['performance', 'accessibility', 'best-practices', 'seo'];
const metrics = [
  ['first-contentful-paint', 'FCP', 's'], ['largest-contentful-paint', 'LCP', 's'],
  ['total-blocking-time', 'TBT', 'ms'], ['cumulative-layout-shift', 'CLS', ''],
  ['speed-index', 'SI', 's'],
];
const rows = [];
for (let run = 1; run <= runs; run++) {
  const report = JSON.parse(fs.readFileSync(`${dir}/run-${run}.report.json`, 'utf8'));
  const scores = keys.map((key) => Math.round(report.categories[key].score * 100));
  const shown = metrics.map(([id, label, unit]) => {
    const value = report.audits[id].numericValue;
    const text = unit === 's' ? (value / 1000).toFixed(1) + ' s'
      : unit === 'ms' ? Math.round(value) + ' ms' : value.toFixed(3);
    return `${label} ${text}`;
  });
  const failed = Object.values(report.audits)
    .filter((audit) => audit.score !== null && audit.score < 1 && audit.scoreDisplayMode === 'binary')
    .map((audit) => audit.id);
  rows.push(scores);
  console.log(`run ${run}: performance ${scores[0]}, accessibility ${scores[1]}, ` +
    `best practices ${scores[2]}, SEO ${scores[3]} (${shown.join(', ')})` +
    (failed.length ? `; failed audits: ${failed.join(', ')}` : ''));
}
const median = keys.map((_, i) => {
  const sorted = rows.map((row) => row[i]).sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
});
const targets = [95, 90, 90, 100];
console.log(`median: performance ${median[0]}, accessibility ${median[1]}, ` +
  `best practices ${median[2]}, SEO ${median[3]} (reports: ${dir}/run-N.report.html)`);
const below = keys.flatMap((key, i) =>
  median[i] < targets[i] ? [`${key} ${median[i]} < ${targets[i]}`] : []);
if (below.length) {
  console.log(`FAILED: ${below.join(', ')}`);
  process.exit(1);
}
console.log('OK: performance >= 95, SEO 100, accessibility and best practices >= 90');
EOF
