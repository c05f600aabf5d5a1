#!/usr/bin/env bash
# tests/clients/test-mailman3.sh — GNU Mailman 3 (Debian's mailman3) as a client of
# stagecoach's SMTP listener, through the real binary ($STAGECOACH_BIN).  TAP output.
#
#   test-mailman3.sh [--posts K] [--members N]      (as root; K=10, N=50)
#
# A private Mailman instance (as user `list`) with a list of N members over five
# domains; its [mta] smtp_host/smtp_port is 127.0.0.1:2525.  Posts are injected
# with inject_text() (what `mailman inject` does) from one `mailman withlist`.
#   1. direct:  smtp-sink on 2525 — the baseline of the hand-off time
#   2. main:    stagecoach `run` on 2525 ([ingress] smtp=), pipeline `decorate;deliver`,
#               its mailer an smtp-sink on 2626: every member gets every post
#               exactly once; Mailman's smtp.log shows no failure
#   3. defer:   the sink on 2626 answers 450 to RCPT: Mailman still sees 250s,
#               stagecoach defers, and delivers everything once the sink is healthy
#   4. down:    stagecoach stopped (SIGTERM) while Mailman sends, and more posts
#               while it is down: Mailman sees 4xx or a refused connection, never
#               5xx, retries, and nothing is lost or doubled once stagecoach is back
# The figures (Mailman's "completed in" per post, direct vs stagecoach) are
# printed as TAP comments and as mm3_* lines on stderr.
#
# Everything runs in private PID + network namespaces (unshare): only loopback
# exists, and the kernel kills whatever is left when the namespace ends.
# Skips (TAP "1..0 # SKIP") when not root, without mailman3 or without unshare.
# The recipe and its pitfalls: ../shared/MAILMAN3.md (not read at run time).
set -euo pipefail

K=10
MEMBERS=50
while [ $# -gt 0 ]; do
  case "$1" in
    --posts) K=$2; shift 2 ;;
    --members) MEMBERS=$2; shift 2 ;;
    *) echo "usage: $0 [--posts K] [--members N]" >&2; exit 2 ;;
  esac
done
LIMIT=${MM3_LIMIT:-180}        # seconds, per wait; every wait is bounded
RETRY_SLEEP=2s                 # Mailman's retry runner period (default 15m)
SMTP_PORT=2525                 # Mailman -> (smtp-sink | stagecoach)
SINK_PORT=2626                 # stagecoach -> smtp-sink
LIST=test@lists.example.org
LIST_ID=test.lists.example.org
DOMAINS=(d1.example.com d2.example.net d3.example.org d4.example d5.test)
MM_BIN=/usr/lib/mailman3/bin
HERE=$(cd "$(dirname "$0")" && pwd)

skip_all() { echo "1..0 # SKIP $*"; exit 0; }
log() { printf '# [mm3 %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- outside the namespaces
if [ -z "${SC_MM3_INNER:-}" ]; then
  [ -n "${STAGECOACH_BIN:-}" ] && [ -x "$STAGECOACH_BIN" ] || { echo "Bail out! STAGECOACH_BIN is not set"; exit 1; }
  [[ "$K" =~ ^[0-9]+$ && "$K" -ge 1 && "$MEMBERS" =~ ^[0-9]+$ && "$MEMBERS" -ge 1 ]] ||
    { echo "Bail out! --posts and --members must be positive integers"; exit 1; }
  [ "$(id -u)" = 0 ] || skip_all "needs root (Mailman runs as user list, smtp-sink as nobody, in namespaces)"
  dpkg-query -W -f='${Status}' mailman3 2>/dev/null | grep -q 'install ok installed' ||
    skip_all "mailman3 is not installed (scripts/deps.sh: install_deps test)"
  [ -x /usr/sbin/smtp-sink ] || skip_all "smtp-sink (postfix) is not installed"
  for p in unshare setpriv ip ss python3; do
    command -v "$p" >/dev/null || skip_all "$p is not installed"
  done
  getent passwd list >/dev/null || skip_all "no user list (mailman3 package)"
  ns=(--pid --fork --kill-child --mount-proc --net)
  unshare "${ns[@]}" true 2>/dev/null || skip_all "unshare --pid --net is not permitted here"
  export SC_MM3_INNER=1
  # unshare blocks INT/TERM while it waits: pass meson's TERM on to the namespace
  unshare "${ns[@]}" bash "$0" --posts "$K" --members "$MEMBERS" &
  ns_parent=$!
  forward() { local c; c=$(cat "/proc/$ns_parent/task/$ns_parent/children" 2>/dev/null || true)
              [ -z "$c" ] || kill -TERM $c 2>/dev/null || true; }
  trap forward INT TERM
  while :; do
    wait "$ns_parent" && rc=0 || rc=$?
    kill -0 "$ns_parent" 2>/dev/null || break   # wait returns early when a trap ran
  done
  exit "$rc"
fi

# ---------------------------------------------------------------- inside: TAP helpers
ip link set lo up
N_TESTS=0
FAILED=0
ok() {       # ok CONDITION-STATUS DESCRIPTION [DIAGNOSTIC]
  N_TESTS=$((N_TESTS + 1))
  if [ "$1" = 0 ]; then echo "ok $N_TESTS - $2"
  else echo "not ok $N_TESTS - $2"; FAILED=1; [ -z "${3:-}" ] || printf '# %s\n' "$3"; fi
}
check() {    # check DESCRIPTION COMMAND... — ok if the command succeeds
  local d=$1; shift
  if "$@"; then ok 0 "$d"; else ok 1 "$d"; fi
}
bail() { N_TESTS=$((N_TESTS + 1)); echo "not ok $N_TESTS - $*"; echo "Bail out! $*"; dump_logs; exit 1; }

WORK=$(mktemp -d /tmp/sc-mm3-XXXXXX)
chmod 755 "$WORK"
CFG=$WORK/mailman.cfg
VAR=$WORK/var
MMLOG=$VAR/logs
PY=$WORK/py
SC_CONF=$WORK/stagecoach.conf
SC_LOG=$WORK/stagecoach.log
PIDS=()
SINK_PID=       # whatever listens on SMTP_PORT for Mailman: smtp-sink (direct phase)
DOWN_PID=       # stagecoach's smtp-sink on SINK_PORT
SC_PID=
MASTER_PID=

dump_logs() {
  local f
  for f in "$SC_LOG" "$MMLOG/smtp.log" "$MMLOG/mailman.log" "$WORK/sink.log"; do
    [ -s "$f" ] || continue
    echo "# ---- last lines of $f"; tail -n 25 "$f" | sed 's/^/#   /'
  done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
port_free() { [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }
forget_pid() { local keep=() p; for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
stop_pid() {        # stop_pid PID [SECONDS] — TERM, KILL after SECONDS (5), reap
  local pid=$1 secs=${2:-5}
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid alive after ${secs}s, KILL"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}
wait_port() {       # wait_port PORT PID SECONDS — until PORT listens; FALSE if PID died or timeout
  local deadline=$((SECONDS + $3))
  until ! port_free "$1"; do
    kill -0 "$2" 2>/dev/null || return 1
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
wait_port_free() { local deadline=$((SECONDS + 10)); until port_free "$1"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.05; done; }

# start_sink PORT DIR [smtp-sink options] — prints its PID
start_sink() {
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"; chown nobody "$dir"
  /usr/sbin/smtp-sink -u nobody -d "$dir/%H%M%S." "$@" "127.0.0.1:$port" 256 >>"$WORK/sink.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" 20 || bail "smtp-sink does not listen on 127.0.0.1:$port"
  LAST_PID=$pid
}

sc() { STAGECOACH_CONFIG=$SC_CONF "$STAGECOACH_BIN" "$@"; }
start_stagecoach() {
  STAGECOACH_CONFIG=$SC_CONF "$STAGECOACH_BIN" run >>"$SC_LOG" 2>&1 &
  SC_PID=$!; PIDS+=("$SC_PID")
  wait_port "$SMTP_PORT" "$SC_PID" 30 ||
    bail "stagecoach run does not listen on [ingress] smtp=127.0.0.1:$SMTP_PORT (no SMTP listener in this build?)"
}
stop_stagecoach() { [ -z "$SC_PID" ] || stop_pid "$SC_PID" 30; SC_PID=; }

as_list() { setpriv --reuid=list --regid=list --init-groups -- env HOME="$WORK/home" PYTHONPATH="$PY" "$@"; }
mm() { as_list timeout "$LIMIT" /usr/bin/mailman -C "$CFG" "$@"; }
master_start() {
  # a plain command, so that $! is the master itself (setpriv and env exec)
  setpriv --reuid=list --regid=list --init-groups -- env HOME="$WORK/home" PYTHONPATH="$PY" \
    "$MM_BIN/master" -C "$CFG" >>"$WORK/master.out" 2>&1 &
  MASTER_PID=$!; PIDS+=("$MASTER_PID")
  local got deadline=$((SECONDS + LIMIT))
  while :; do   # ready: all 11 runners logged "runner started."
    got=$(grep -c 'runner started\.' "$MMLOG/mailman.log" 2>/dev/null || true)
    [ "${got:-0}" -ge 11 ] && break
    kill -0 "$MASTER_PID" 2>/dev/null || bail "mailman master exited (see $WORK/master.out)"
    [ $SECONDS -lt $deadline ] || bail "only ${got:-0}/11 Mailman runners started after ${LIMIT}s"
    sleep 0.1
  done
}
master_stop() {
  [ -n "$MASTER_PID" ] || return 0
  local kids k; kids=$(cat "/proc/$MASTER_PID/task/$MASTER_PID/children" 2>/dev/null || true)
  stop_pid "$MASTER_PID" 30
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true; done
  MASTER_PID=
}
queue_counts() {
  local q out=""
  for q in in pipeline out retry shunt bad; do
    out+="$q=$( { find "$VAR/queue/$q" -maxdepth 1 -name '*.pck' 2>/dev/null || true; } | wc -l) "
  done
  echo "${out% }"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  master_stop
  local pid; for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  echo "1..$N_TESTS"
  if [ "$rc" = 0 ] && [ "$FAILED" = 0 ] && [ -z "${MM3_KEEP:-}" ]; then rm -rf "$WORK"
  else log "kept $WORK"; fi
  [ "$FAILED" = 0 ] || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- the private instances
mkdir -p "$WORK/home" "$VAR" "$PY" "$WORK/msgs"
chown list:list "$WORK/home" "$VAR"
cp "$HERE/mm3harness.py" "$HERE/mm3analyze.py" "$PY/"
: >"$WORK/sink.log"; : >"$WORK/master.out"; : >"$SC_LOG"

cat >"$CFG" <<EOF
[mailman]
site_owner: owner@lists.example.org
layout: sctest
# a private layout needs bin_dir: its default is the directory of sys.executable
[paths.sctest]
var_dir: $VAR
bin_dir: $MM_BIN
pid_file: $VAR/master.pid
[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///\$DATA_DIR/mailman.db
[mta]
incoming: mailman.mta.null.NullMTA
outgoing: mailman.mta.deliver.deliver
smtp_host: 127.0.0.1
smtp_port: $SMTP_PORT
max_recipients: 500
max_sessions_per_connection: 0
delivery_retry_period: 5d
[runner.lmtp]
start: no
[runner.rest]
start: no
[runner.retry]
sleep_time: $RETRY_SLEEP
EOF

# Mailman decorates before SMTP (footer, [Test] prefix, List-* fields), and
# stagecoach's decorate runs too: with footer-if-absent (the default) it must
# see Mailman's List-Id and add no second footer (its own says the same words,
# so a second one would be counted), and replace, not double, the List-*
# fields.  Its List-Id <test.lists.example.org> routes the message; the
# envelope sender test-bounces@ would too.  Short retry delays so the
# failure phases finish in seconds.
printf -- '-- \nTo unsubscribe send an email to the list owner of $list_id\n' >"$WORK/footer.txt"
cat >"$SC_CONF" <<EOF
[stagecoach]
spool=$WORK/spool
workers=4
[retry]
initial=1s
max-delay=2s
[deliver]
circuit-cooldown=1s
[admin]
listen=
[ingress]
smtp=127.0.0.1:$SMTP_PORT
[mailer:sink]
url=smtp://127.0.0.1:$SINK_PORT
starttls=off
timeout=10s
[list:$LIST_ID]
pipeline=decorate;deliver
footer=$WORK/footer.txt
from-rewrite=never
bounces=test-bounces@lists.example.org
EOF
chmod -R a+rX "$PY" "$CFG"
sc check-config >&2 || bail "stagecoach check-config refused $SC_CONF"

{
  printf 'From: Poster <poster@example.net>\nTo: %s\nSubject: post @TAG@-@SEQ@\n' "$LIST"
  printf 'Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <mm3-@TAG@-@SEQ@@example.net>\n'
  printf 'X-Harness-Post: @TAG@-@SEQ@\nMIME-Version: 1.0\nContent-Type: text/plain; charset="us-ascii"\n\n'
  for i in $(seq 1 30); do printf 'Line %03d of a plain-text post; the quick brown fox jumps over the lazy dog.\n' "$i"; done
} >"$WORK/msgs/template.eml"
for i in $(seq 1 "$MEMBERS"); do
  printf 'Member %d <member%03d@%s>\n' "$i" "$i" "${DOMAINS[$(( (i - 1) % ${#DOMAINS[@]} ))]}"
done >"$WORK/members.txt"
chmod -R a+rX "$WORK/msgs" "$WORK/members.txt"

log "mailman3 $(dpkg-query -W -f='${Version}' mailman3); work $WORK; K=$K posts per phase, $MEMBERS members"
mm create --quiet "$LIST" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; bail "mailman create failed"; }
mm withlist -r mm3harness.configure -l "$LIST" none >>"$WORK/setup.log" 2>&1 || bail "configuring the list failed"
mm addmembers --no-welcome-msg "$WORK/members.txt" "$LIST" >>"$WORK/setup.log" 2>&1 || bail "mailman addmembers failed"
n=$(mm members "$LIST" 2>/dev/null | grep -c '@' || true)
[ "$n" = "$MEMBERS" ] || bail "the list has $n members, expected $MEMBERS"

inject() {   # inject TAG FIRST COUNT
  mm withlist -r mm3harness.inject_many -l "$LIST" "$WORK/msgs/template.eml" "$1" "$2" "$3" >/dev/null ||
    bail "inject_many $1 failed"
}
kv() { sed -n "s/^$2=//p" <<<"$1"; }
analyze() { python3 "$PY/mm3analyze.py" "$@"; }
# smtp.log lines of TAG's posts
tag_log() { grep -h -- "<mm3-$1-[0-9]*@example.net>" "$MMLOG/smtp.log" 2>/dev/null || true; }
handoffs() { tag_log "$1" | grep -c ' smtp to ' || true; }
failures_logged() { tag_log "$1" | grep -E -c 'failed with code|recipients refused|low level smtp error|[1-9][0-9]* failures$' || true; }
fivexx_logged() { tag_log "$1" | grep -E -c 'failed with code 5|: \(5[0-9][0-9],' || true; }
completed_avg() { tag_log "$1" | sed -n 's/.*completed in \([0-9.]*\) seconds.*/\1/p' |
                  awk '{ s += $1; n++ } END { if (n) printf "%.4f", s / n; else print "?" }'; }
completed_median() { tag_log "$1" | sed -n 's/.*completed in \([0-9.]*\) seconds.*/\1/p' | sort -n |
                     awk '{ v[n++] = $1 } END { if (n) printf "%.4f", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2; else print "?" }'; }

# wait_handoff TAG COUNT — until smtp.log has COUNT "smtp to" lines for TAG (bounded;
# gives up once Mailman's queues are idle for 10 s)
wait_handoff() {
  local deadline=$((SECONDS + LIMIT)) idle=0 prev=-1 got
  while :; do
    got=$(handoffs "$1")
    [ "$got" -ge "$2" ] && return 0
    [ $SECONDS -lt $deadline ] || { log "timeout: $got/$2 hand-offs of $1 ($(queue_counts))"; return 1; }
    if [ "$got" = "$prev" ] && [[ "$(queue_counts)" =~ ^in=0\ pipeline=0\ out=0\ retry=0 ]]; then
      idle=$((idle + 1)); [ $idle -lt 100 ] || { log "stalled: $got/$2 hand-offs of $1"; return 1; }
    else idle=0; fi
    prev=$got; sleep 0.1
  done
}
# wait_rcpts DIR TAG WANT — until the sink holds WANT (post, recipient) deliveries of TAG
wait_rcpts() {
  local deadline=$((SECONDS + LIMIT)) got
  while :; do
    A=$(analyze "$1" "$2"); got=$(kv "$A" recipients)
    [ "$got" -ge "$3" ] && return 0
    [ $SECONDS -lt $deadline ] || { log "timeout: $got/$3 deliveries of $2 at $1"; return 1; }
    sleep 0.5
  done
}
# settle DIR TAG WANT DESCRIPTION — waits, then asserts exactly WANT pairs, no duplicates
settle() {
  local dir=$1 tag=$2 want=$3 what=$4
  wait_rcpts "$dir" "$tag" "$want" || true
  sleep 1   # a late duplicate would still show up
  A=$(analyze "$dir" "$tag")
  ok "$([ "$(kv "$A" unique_post_rcpt)" = "$want" ] && echo 0 || echo 1)" \
    "$what: $want (post, member) pairs at the sink" "got $(kv "$A" unique_post_rcpt) distinct, $(kv "$A" recipients) in all"
  ok "$([ "$(kv "$A" duplicates)" = 0 ] && [ "$(kv "$A" recipients)" = "$want" ] && echo 0 || echo 1)" \
    "$what: each exactly once" "duplicates: $(kv "$A" duplicates)"
  ok "$([ "$(kv "$A" footers_per_transaction)" = "1x$(kv "$A" transactions)" ] && echo 0 || echo 1)" \
    "$what: one footer per message (no second decoration)" "footers: $(kv "$A" footers_per_transaction)"
  ok "$([ "$(kv "$A" list_ids_per_transaction)" = "1x$(kv "$A" transactions)" ] && echo 0 || echo 1)" \
    "$what: one List-Id field per message" "List-Id fields: $(kv "$A" list_ids_per_transaction)"
}

# ---------------------------------------------------------------- 1. direct into smtp-sink
master_start
log "Mailman up ($(grep -c 'runner started\.' "$MMLOG/mailman.log") runners)"
start_sink "$SMTP_PORT" "$WORK/sink-direct"; SINK_PID=$LAST_PID
inject direct 1 "$K"
wait_handoff direct "$K" || true
settle "$WORK/sink-direct" direct $((K * MEMBERS)) "direct to smtp-sink (baseline)"
stop_pid "$SINK_PID"; SINK_PID=
wait_port_free "$SMTP_PORT" || bail "port $SMTP_PORT still taken after the direct phase"

# ---------------------------------------------------------------- 2. through stagecoach
start_sink "$SINK_PORT" "$WORK/sink-sc"; DOWN_PID=$LAST_PID
start_stagecoach
ok 0 "stagecoach run listens on [ingress] smtp=127.0.0.1:$SMTP_PORT"
inject main 1 "$K"
wait_handoff main "$K" || true
ok "$([ "$(handoffs main)" = "$K" ] && echo 0 || echo 1)" "main: Mailman handed all $K posts over once each" "smtp.log: $(handoffs main) hand-offs"
ok "$([ "$(failures_logged main)" = 0 ] && echo 0 || echo 1)" "main: Mailman's smtp.log shows no failure" "$(tag_log main | grep -E 'failed|refused|error' | head -3)"
settle "$WORK/sink-sc" main $((K * MEMBERS)) "main through stagecoach"
n=$(sc list --json --limit 0 | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin) if m["message_id"].startswith("<mm3-main-")))')
ok "$([ "$n" -ge "$K" ] && echo 0 || echo 1)" "main: stagecoach stored the posts (list --json)" "$n stored"

# ---------------------------------------------------------------- 3. stagecoach's mailer fails
D=$(( K < 3 ? K : 3 ))
stop_pid "$DOWN_PID"; wait_port_free "$SINK_PORT" || true
start_sink "$SINK_PORT" "$WORK/sink-failing" -r rcpt; DOWN_PID=$LAST_PID
inject defer 1 "$D"
wait_handoff defer "$D" || true
ok "$([ "$(handoffs defer)" = "$D" ] && [ "$(failures_logged defer)" = 0 ] && echo 0 || echo 1)" \
  "defer: Mailman saw only 250s while stagecoach's mailer answered 450" "$(tag_log defer | head -3)"
deadline=$((SECONDS + 60)); deferred=0
until [ "$deferred" -ge 1 ] || [ $SECONDS -ge $deadline ]; do
  deferred=$(sc list --json --limit 0 --state deferred | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin) if m["message_id"].startswith("<mm3-defer-")))')
  sleep 0.5
done
ok "$([ "$deferred" -ge 1 ] && echo 0 || echo 1)" "defer: stagecoach deferred the posts its mailer refused" "deferred: $deferred"
sleep 3   # failing for a while: a few more attempts at 1-2 s
stop_pid "$DOWN_PID"; wait_port_free "$SINK_PORT" || true
start_sink "$SINK_PORT" "$WORK/sink-sc"; DOWN_PID=$LAST_PID
settle "$WORK/sink-sc" defer $((D * MEMBERS)) "defer: after the sink is healthy again"

# ---------------------------------------------------------------- 4. stagecoach stopped
S=$(( K < 4 ? K : 4 ))
inject down 1 "$S"
deadline=$((SECONDS + LIMIT))
until [ "$(handoffs down)" -ge 1 ] || [ $SECONDS -ge $deadline ]; do sleep 0.02; done
seen=$(handoffs down)
stop_stagecoach    # SIGTERM while Mailman is sending the rest
log "stagecoach stopped (SIGTERM) once $seen of $S posts of 'down' were handed off ($(handoffs down) when it had exited)"
inject down $((S + 1)) 2   # and two more while it is down
deadline=$((SECONDS + LIMIT))
until [ "$(failures_logged down)" -ge 1 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
ok "$([ "$(failures_logged down)" -ge 1 ] && echo 0 || echo 1)" "down: Mailman noticed stagecoach was gone" "$(tag_log down | tail -3)"
sleep 3   # at least one retry of Mailman's against the closed port
start_stagecoach
settle "$WORK/sink-sc" down $(((S + 2) * MEMBERS)) "down: after stagecoach is back"
codes=$(tag_log down | grep -o 'failed with code [0-9]*\|low level smtp error: [^,]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
log "down: what Mailman saw: $codes"
ok "$([ "$(fivexx_logged main)$(fivexx_logged defer)$(fivexx_logged down)" = 000 ] && echo 0 || echo 1)" \
  "Mailman never saw a 5xx from stagecoach" "$(grep -E 'code 5|\(5[0-9][0-9],' "$MMLOG/smtp.log" | head -3)"
dead=$(sc status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["dead"])')
ok "$([ "$dead" = 0 ] && echo 0 || echo 1)" "no message went dead in stagecoach" "dead: $dead"

# ---------------------------------------------------------------- figures
DIRECT_AVG=$(completed_avg direct); MAIN_AVG=$(completed_avg main)
DIRECT_MED=$(completed_median direct); MAIN_MED=$(completed_median main)
RATIO=$(awk -v a="$MAIN_MED" -v b="$DIRECT_MED" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')
cat <<EOF
# Mailman smtp.log "completed in" per post ($MEMBERS recipients, $(tag_log main | grep -c ' smtp to ') posts):
#   straight into smtp-sink: median ${DIRECT_MED}s, mean ${DIRECT_AVG}s
#   into stagecoach:         median ${MAIN_MED}s, mean ${MAIN_AVG}s  (ratio ${RATIO})
# down phase, what Mailman logged: $codes
EOF
cat >&2 <<EOF
mm3_posts_per_phase=$K
mm3_members=$MEMBERS
mm3_completed_direct_median_s=$DIRECT_MED
mm3_completed_direct_mean_s=$DIRECT_AVG
mm3_completed_stagecoach_median_s=$MAIN_MED
mm3_completed_stagecoach_mean_s=$MAIN_AVG
mm3_completed_ratio=$RATIO
mm3_down_codes="$codes"
EOF
stop_stagecoach
