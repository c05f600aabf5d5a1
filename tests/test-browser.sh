#!/usr/bin/env bash
# tests/test-browser.sh — meson's "browser" test: the admin dashboard in
# headless Chromium, driven by tests/browser/dashboard.test.mjs against a
# live daemon.  Exit 77 (skip) where Chromium, node or the node modules
# (scripts/deps.sh install_browser_deps) are missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
browser="$here/browser"

skip() { echo "SKIP: $*"; exit 77; }

[ -x /usr/bin/chromium ] || skip "/usr/bin/chromium is not installed"
command -v node >/dev/null || skip "node is not installed"
[ -d "$browser/node_modules/playwright-core" ] ||
  skip "$browser/node_modules is missing (npm ci --prefix tests/browser)"
[ -n "${STAGECOACH_BIN:-}" ] && [ -x "$STAGECOACH_BIN" ] || skip "STAGECOACH_BIN is not set"
# The dashboard arrives with the admin server: a binary built before it has
# no dashboard to test.
grep -q 'stagecoach-dashboard' "$STAGECOACH_BIN" ||
  skip "$STAGECOACH_BIN has no dashboard compiled in"

export STAGECOACH_ARTIFACTS="${STAGECOACH_ARTIFACTS:-$here/artifacts}"
node "$browser/dashboard.test.mjs"
exit $?
