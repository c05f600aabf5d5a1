#!/usr/bin/env bash
# scripts/test-sanitizers.sh — the whole suite under AddressSanitizer and
# UBSan (build-asan/), then the unit suites under valgrind (build/).
# Not part of the default suite: it takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps test
dpkg-query -W valgrind >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind

[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Dbuildtype=debug
ninja -C build-asan
# fast_unwind_on_malloc=0: GLib has no frame pointers, and the suppression
# (GLib 2.74's g_set_user_dirs) only matches full stacks.
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C build-asan --print-errorlogs

[ -f build/build.ninja ] || meson setup build
ninja -C build
meson test -C build --suite unit --print-errorlogs \
  --wrap="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes --suppressions=$PWD/tests/valgrind.supp"
