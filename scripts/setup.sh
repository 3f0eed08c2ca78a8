#!/usr/bin/env bash
# Installs what the project needs when it is missing, on a fresh Debian machine with rustup:
# a C compiler and make (the server's allocator, jemalloc, is C built with the server), the
# wasm target, trunk and wasm-bindgen-cli (for the web page), Node.js (tests run JSONP answers
# in it), Chromium and its WebDriver (browser tests), the npm packages of the legacy test pages
# and of the accessibility checks (axe-core), and Lighthouse (scripts/lighthouse.sh).
# Safe to run again: each step is skipped when already done.
#
# Usage: scripts/setup.sh [run|test|cluster]   (run: only what running the product needs;
# cluster: only Redis and nginx, for scripts/run-cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-test}"
TRUNK_VERSION=0.21.14
log() { printf '[setup] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The wasm-bindgen version trunk must use is the one in Cargo.lock, exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_rust_components() {
  # .ci/run checks formatting and lints.
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      log "rustup component add $component"
      rustup component add "$component"
    fi
  done
}

ensure_web_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  if ! command -v trunk >/dev/null || ! trunk --version | grep -q "$TRUNK_VERSION"; then
    # trunk 0.22 needs a newer rustc than this machine's 1.95.
    log "cargo install trunk $TRUNK_VERSION (about 11 minutes)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
  local wbg
  wbg="$(wasm_bindgen_version)"
  if ! command -v wasm-bindgen >/dev/null || ! wasm-bindgen --version | grep -q " $wbg\$"; then
    # Not --locked: one dependency of its lock file is no longer in the registry.
    log "cargo install wasm-bindgen-cli $wbg (about 6 minutes)"
    cargo install wasm-bindgen-cli --version "$wbg"
  fi
  # wasm-opt for the page's release build, from npm's binaryen (Debian's is too old for what
  # rustc 1.95 emits); the build scripts put frontend/tools/node_modules/.bin on PATH.
  if [ ! -x frontend/tools/node_modules/.bin/wasm-opt ]; then
    ensure_node
    log "npm install (binaryen's wasm-opt for the page's release build)"
    (cd frontend/tools && npm install --no-audit --no-fund --silent)
  fi
}

ensure_c_build_tools() {
  # tikv-jemalloc-sys runs jemalloc's configure and make while the server builds.
  if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
    apt_install gcc make libc6-dev
  fi
}

ensure_node() {
  if ! command -v node >/dev/null; then
    apt_install nodejs npm
  fi
}

ensure_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
  fi
  # A CJK font, so that the browser tests' screenshots show the Chinese texts.
  if ! fc-list 2>/dev/null | grep -qi "wenquanyi"; then
    apt_install fonts-wqy-zenhei
  fi
  # And a colour emoji font, so that emoji in messages are not drawn as empty boxes.
  if ! fc-list 2>/dev/null | grep -qi "Noto Color Emoji"; then
    apt_install fonts-noto-color-emoji
  fi
}

ensure_services() {
  # Redis (the shared backend's tests, and scripts/run-cluster.sh) and nginx (the tests of
  # several instances behind one address), from Debian's packages.
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt_install nginx
    # The package may start a system nginx on port 80; the tests run their own.
    service nginx stop >/dev/null 2>&1 || true
  fi
}

ensure_legacy_pages() {
  # jQuery 1.x and 3.x for the legacy test page, from the npm registry (never committed).
  if [ ! -f e2e/legacy/node_modules/jquery1/dist/jquery.min.js ] || [ ! -f e2e/legacy/node_modules/jquery3/dist/jquery.min.js ]; then
    log "npm install (jQuery 1.x and 3.x for the legacy page)"
    (cd e2e/legacy && npm install --no-audit --no-fund --silent)
  fi
}

ensure_axe() {
  # axe-core, the accessibility checker the browser tests inject into the page, at the version
  # pinned in e2e/axe/package-lock.json.
  if [ ! -f e2e/axe/node_modules/axe-core/axe.min.js ]; then
    log "npm install (axe-core for the accessibility checks of the browser tests)"
    (cd e2e/axe && npm install --no-audit --no-fund --silent)
  fi
}

ensure_lighthouse() {
  # Lighthouse for scripts/lighthouse.sh (the release page's audit), from the npm registry.
  if [ ! -x e2e/lighthouse/node_modules/.bin/lighthouse ]; then
    log "npm install (Lighthouse, for scripts/lighthouse.sh)"
    (cd e2e/lighthouse && npm install --no-audit --no-fund --silent)
  fi
}

export PATH="$HOME/.cargo/bin:$PATH"
ensure_c_build_tools
ensure_web_tools
if [ "$what" = cluster ]; then
  ensure_services
  exit 0
fi
if [ "$what" = test ]; then
  ensure_services
  ensure_rust_components
  ensure_node
  ensure_browser
  ensure_legacy_pages
  ensure_axe
  ensure_lighthouse
fi
