#!/usr/bin/env bash
# scripts/bench.sh — stagecoach side by side with Postfix (issue 9): installs
# what is missing, builds, then runs tests/bench/bench.py and prints one table.
#   scripts/bench.sh --quick                 everything small (a few minutes)
#   scripts/bench.sh --only 1,3,6            some figures;  --skip 8  all but some
#   scripts/bench.sh --only 10               the sign stage's cost per message (DKIM)
#   scripts/bench.sh --write doc/performance.md   also record the run there
#   scripts/bench.sh --help                  every option
# Run it as root: the run lives in private PID + network namespaces (unshare)
# and the Postfix column needs a private Postfix; without root it is empty.
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  case $arg in
    -h|--help) exec python3 tests/bench/bench.py --help ;;
  esac
done
. scripts/deps.sh
install_deps test
if ! command -v valgrind >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind
fi
BUILD=${BUILD:-build}
build_project "$BUILD" >/dev/null
exec python3 tests/bench/bench.py --build "$BUILD" "$@"
