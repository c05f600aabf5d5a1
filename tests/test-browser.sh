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
# a binary without STAGECOACH_BIN or without the dashboard is a failure,
# not a skip: only a machine that cannot run Chromium may skip
[ -n "${STAGECOACH_BIN:-}" ] && [ -x "$STAGECOACH_BIN" ] || { echo "STAGECOACH_BIN is not set"; exit 1; }
# the dashboard lives in the full program the lean front execs
main_bin="$(dirname "$STAGECOACH_BIN")/stagecoach-main"
grep -q 'stagecoach-dashboard' "$main_bin" ||
  { echo "$main_bin has no dashboard compiled in"; exit 1; }

export STAGECOACH_ARTIFACTS="${STAGECOACH_ARTIFACTS:-$here/artifacts}"
node "$browser/dashboard.test.mjs"
exit $?
