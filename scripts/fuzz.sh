#!/usr/bin/env bash
# scripts/fuzz.sh TARGET SECONDS — fuzzes one target with libFuzzer.
#   TARGET: decorate | config | reply | admin | smtp-session   (tests/fuzz/fuzz-TARGET.c)
#
# Builds build-fuzz/ once (clang-14, -Dfuzzing=true, ASan + UBSan, the
# library instrumented for coverage), then runs fuzz-TARGET for SECONDS on
# tests/fuzz/corpus/TARGET (seeds, read only) and build-fuzz/fuzz-work/TARGET
# (what it finds, kept between runs).  A crash is copied to
# tests/fuzz/crashes/TARGET/, where the default build replays it as a test
# (meson test fuzz-TARGET): commit it with the fix.  The last line is
#   fuzz TARGET: N runs in S s (R/s), cov C, ft F, corpus K, crashes X
# Exit status: 0 no crash, 1 crash found, 2 usage.
#   FUZZ_BUILD=dir    another build folder
#   FUZZ_ARGS="..."   more libFuzzer options (e.g. -jobs=2 -workers=2)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ] || [ ! -f "tests/fuzz/fuzz-$1.c" ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS   (targets: $(ls tests/fuzz/fuzz-*.c | sed 's|.*/fuzz-||; s|\.c$||' | tr '\n' ' '))" >&2
  exit 2
fi
target=$1
seconds=$2

. scripts/deps.sh
install_deps fuzz

BUILD=${FUZZ_BUILD:-build-fuzz}
if [ ! -f "$BUILD/build.ninja" ]; then
  # -fsanitize=fuzzer-no-link: coverage feedback from the library, not only
  # the target; -fno-sanitize-recover: UBSan findings stop the run.
  CC=clang-14 meson setup "$BUILD" -Dfuzzing=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbrowser_tests=disabled \
    -Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer -gline-tables-only"
fi
ninja -C "$BUILD" "tests/fuzz/fuzz-$target"

work="$BUILD/fuzz-work/$target"
artifacts="$BUILD/fuzz-artifacts/$target"
log="$BUILD/fuzz-$target.log"
mkdir -p "$work" "$artifacts"
dict=()
[ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export G_DEBUG=fatal-criticals LC_ALL=C.UTF-8
# libFuzzer's own options: -max_len keeps inputs message-sized, the
# timeout and rss limit turn a hang or a runaway allocation into a finding.
status=0
started=$(date +%s)
# shellcheck disable=SC2086
"$BUILD/tests/fuzz/fuzz-$target" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=65536 -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" \
  "${dict[@]}" ${FUZZ_ARGS:-} "$work" "tests/fuzz/corpus/$target" >"$log" 2>&1 || status=$?

elapsed=$(($(date +%s) - started))
crashes=0
for found in "$artifacts"/*; do
  [ -f "$found" ] || continue
  mkdir -p "tests/fuzz/crashes/$target"
  cp -n "$found" "tests/fuzz/crashes/$target/"
  crashes=$((crashes + 1))
done
if [ $status -ne 0 ] || [ $crashes -gt 0 ]; then
  grep -E 'ERROR|SUMMARY|fuzz property|#[0-9]+ 0x' "$log" | head -40 >&2 || true
  echo "==> kept in tests/fuzz/crashes/$target/: $(ls "$artifacts" | tr '\n' ' ')(log: $log)" >&2
fi
# the last progress line carries the totals
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
echo "fuzz $target: ${runs:-?} runs in $elapsed s (${secs:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, crashes $crashes"
if [ $status -ne 0 ] || [ $crashes -gt 0 ]; then
  exit 1
fi
