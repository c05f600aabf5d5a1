#!/usr/bin/env bash
# scripts/test.sh — install what is missing, build, run every test suite,
# and end with one line: "N passed, N failed[, N skipped]" (GTest cases).
#   scripts/test.sh                 all default suites
#   scripts/test.sh --suite unit    meson test arguments are passed through
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps test
install_browser_deps

BUILD=${BUILD:-build}
build_project "$BUILD"

# The package suite (tests/package/) builds the .deb, installs it with apt and
# purges it: it runs as root or with passwordless sudo (1-2 min) and shows as
# SKIP otherwise.  Leave it out with --no-suite package.
if [ "$(id -u)" -ne 0 ] && ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
  echo "==> the package suite will be skipped: it needs root or passwordless sudo"
fi

status=0
meson test -C "$BUILD" --print-errorlogs --no-suite slow "$@" || status=$?
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json"
exit $status
