#!/usr/bin/env bash
# scripts/test-sanitizers.sh — the whole suite under AddressSanitizer and
# UBSan (build-asan/), then the unit suites under valgrind (build/).
# Not part of the default suite: it takes several minutes.  Ends with two
# lines, "asan: N passed, N failed" and "valgrind: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps fuzz   # the test packages plus valgrind
install_browser_deps

[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Dbuildtype=debug
ninja -C build-asan
# fast_unwind_on_malloc=0: GLib has no frame pointers, and the suppression
# (GLib 2.74's g_set_user_dirs) only matches full stacks.
# verify_asan_link_order=0: the clock-step rows of the fault matrix preload
# libfaketime into the daemon, which ASan would otherwise refuse.
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:verify_asan_link_order=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# tests that measure memory skip themselves: RSS would be the sanitizer's
export SC_SANITIZED=1
# The crash suite kills its runner 10 times at random moments; a message
# in a handler at 3 of them is held as poison, by design.  Instrumented
# handlers run 2-5x longer, so the kills come 2.5x further apart here:
# the same odds as the plain build (once: 1 held of 1000 under ASan on a
# busy machine, SC_SEED=282626610 passing on the rerun).
export SC_CRASH_KILL_MS=${SC_CRASH_KILL_MS:-5000}
status=0
# instrumented binaries are 2-5 times slower: the suites' timeouts with them
meson test -C build-asan --print-errorlogs --no-suite slow --timeout-multiplier 3 || status=1
# the summary's last line is the count; the FAILED lines above it name the cases
asan_report=$(python3 scripts/test-summary.py build-asan/meson-logs/testlog.json)
asan=$(echo "$asan_report" | tail -n 1)

[ -f build/build.ninja ] || meson setup build
ninja -C build
# valgrind is 20-50 times slower: spool's 60 s took 39 s alone, more on a busy machine
meson test -C build --suite unit --suite fuzz --print-errorlogs --timeout-multiplier 3 \
  --wrap="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes --suppressions=$PWD/tests/valgrind.supp" || status=1
# meson names the log of a wrapped run after the wrapper
valgrind_report=$(python3 scripts/test-summary.py build/meson-logs/testlog-valgrind.json)
valgrind=$(echo "$valgrind_report" | tail -n 1)
echo "$asan_report" | grep '^FAILED ' | sed 's/^/asan /' || true
echo "$valgrind_report" | grep '^FAILED ' | sed 's/^/valgrind /' || true
echo "asan: $asan"
echo "valgrind: $valgrind"
exit $status
