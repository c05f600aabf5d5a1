#!/usr/bin/env bash
# scripts/crash-run.sh — the long crash run of tests/reliability/test-crash.c:
# a stream of corpus messages through `stagecoach run` into smtp-sink while
# the runner is SIGKILLed and restarted at random moments; then the checks
# (every accepted message done, none held, every recipient received it,
# duplicates per (Message-ID, recipient) <= kills, integrity_check, no stage
# completed twice).  Prints the seed and the figures; exit 0 when every
# check passed.  Run as root (smtp-sink drops to nobody).
#   scripts/crash-run.sh [--seed N] [--messages N] [--kills N] [--callers N]
#                        [--lists N] [--max-rcpts N] [--max-body BYTES]
#                        [--kill-ms MS] [--drain-s S] [--keep]
# Defaults: 5000 messages, 50 kills, 4 callers, 3 lists, 1-50 recipients,
# corpus files up to 256 KiB, a runner lives 150 ms-6 s between kills.
set -euo pipefail
cd "$(dirname "$0")/.."

export SC_CRASH_MESSAGES=5000 SC_CRASH_KILLS=50 SC_CRASH_CALLERS=4 SC_CRASH_LISTS=3
export SC_CRASH_MAX_RCPTS=50 SC_CRASH_MAX_BODY=262144 SC_CRASH_KILL_MS=6000 SC_CRASH_DRAIN_S=600
export SC_SEED=${SC_SEED:-$(( $(date +%s%N) % 1000000000 ))}
while [ $# -gt 0 ]; do
  case $1 in
    --seed) SC_SEED=$2; shift ;;
    --messages) SC_CRASH_MESSAGES=$2; shift ;;
    --kills) SC_CRASH_KILLS=$2; shift ;;
    --callers) SC_CRASH_CALLERS=$2; shift ;;
    --lists) SC_CRASH_LISTS=$2; shift ;;
    --max-rcpts) SC_CRASH_MAX_RCPTS=$2; shift ;;
    --max-body) SC_CRASH_MAX_BODY=$2; shift ;;
    --kill-ms) SC_CRASH_KILL_MS=$2; shift ;;
    --drain-s) SC_CRASH_DRAIN_S=$2; shift ;;
    --keep) export SC_CRASH_KEEP=1 ;;
    *) echo "usage: $0 [--seed N] [--messages N] [--kills N] [--callers N] [--lists N] [--max-rcpts N] [--max-body BYTES] [--kill-ms MS] [--drain-s S] [--keep]" >&2; exit 64 ;;
  esac
  shift
done

. scripts/deps.sh
install_deps test
BUILD=${BUILD:-build}
build_project "$BUILD" >/dev/null

export STAGECOACH_BIN=$PWD/$BUILD/stagecoach
export SC_CORPUS=${SC_CORPUS:-$(cd .. && pwd)/shared/corpus}
export LC_ALL=C.UTF-8
echo "crash run: seed=$SC_SEED messages=$SC_CRASH_MESSAGES kills=$SC_CRASH_KILLS (repeat with --seed $SC_SEED)"
log=$(mktemp /tmp/crash-run-XXXXXX.log)
status=0
"$BUILD/tests/reliability/test-crash" --tap >"$log" 2>&1 || status=$?
grep -E '^# (crash|FAILED|kept)|^(ok|not ok) ' "$log" || true
echo "crash run: full output in $log"
echo "crash run: seed=$SC_SEED exit=$status"
exit "$status"
