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

status=0
meson test -C "$BUILD" --print-errorlogs --no-suite slow "$@" || status=$?
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json"
exit $status
