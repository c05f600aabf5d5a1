#!/usr/bin/env bash
# scripts/run.sh — install what is missing, build, and run stagecoach on
# the embedded default (a SQLite spool in ./demo, archive in a Maildir,
# delivery to a local smtp-sink), showing messages move through
# decorate → archive → deliver.
#
# Interactive: the daemon keeps running in the foreground (Ctrl-C stops
# it).  Without a terminal (or with STAGECOACH_DEMO_EXIT=1) it stops after
# the tour.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
install_deps run

BUILD=${BUILD:-build}
build_project "$BUILD"

SC=$PWD/$BUILD/stagecoach
DEMO=${STAGECOACH_DEMO_DIR:-$PWD/demo}
mkdir -p "$DEMO"
cp data/footer.txt.example "$DEMO/footer.txt"
# A stand-in relay: Postfix's smtp-sink keeps every message it accepts in
# demo/delivered/ (one file per SMTP transaction).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The demo makes no DNS lookups (a machine may have no resolver that
# reaches the Internet): From is rewritten always instead of per DMARC.
sed -e "s|^url=smtp://127.0.0.1:2525|url=smtp://127.0.0.1:$port|" \
    -e "s|^smtp=127.0.0.1:2526|smtp=127.0.0.1:$smtp_port|" \
    -e "s|^from-rewrite=dmarc|from-rewrite=always|" data/stagecoach.conf.example >"$DEMO/stagecoach.conf"
mkdir -p "$DEMO/delivered"
# As root smtp-sink must drop to another user (nobody), who may not be able
# to enter this clone (/root is 0700): it then resets every connection.  So
# as root it writes to a folder of its own under /tmp, copied into
# demo/delivered when the demo stops.
sink_user=()
sink_dir=
delivered=$DEMO/delivered
if [ "$(id -u)" -eq 0 ]; then
  sink_user=(-u nobody)
  sink_dir=$(mktemp -d /tmp/stagecoach-demo-sink.XXXXXX)
  chown nobody "$sink_dir"
  delivered=$sink_dir
fi
sink=
daemon=
stop_demo() {
  local pids=()
  [ -n "$daemon" ] && pids+=("$daemon")
  [ -n "$sink" ] && pids+=("$sink")
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ -n "$sink_dir" ]; then
    cp -pr "$sink_dir"/. "$DEMO/delivered/" 2>/dev/null || true
    rm -rf "$sink_dir"
  fi
}
trap stop_demo EXIT
/usr/sbin/smtp-sink "${sink_user[@]}" -d "$delivered/%M." "127.0.0.1:$port" 64 >/dev/null 2>&1 &
sink=$!
export STAGECOACH_CONFIG=$DEMO/stagecoach.conf
"$SC" check-config

echo "==> starting the daemon (log: $DEMO/stagecoach.log)"
"$SC" --verbose run >"$DEMO/stagecoach.log" 2>&1 &
daemon=$!
sleep 0.5

echo "==> injecting three messages for demo.example.org"
ids=()
for n in 1 2 3; do
  id=$(printf 'From: Alice <alice@example.org>\nTo: demo@example.org\nSubject: Hello number %s\n\nHello, list! This is message %s.\n' "$n" "$n" |
       "$SC" inject --list demo.example.org --from alice@example.org bob@example.net carol@example.com)
  echo "    queued as $id"
  ids+=("$id")
done

# this run's messages only: demo/ keeps the spool of earlier runs
echo "==> and a fourth over SMTP (the daemon's listener on 127.0.0.1:$smtp_port, as Mailman hands over posts)"
smtp_id=$(python3 - "$smtp_port" <<'PY'
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "Alice <alice@example.org>"
m["To"] = "demo@example.org"
m["Subject"] = "Hello number 4, by SMTP"
m["List-Id"] = "<demo.example.org>"
m.set_content("Hello, list! This one came in over SMTP.")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.ehlo()
    s.mail("alice@example.org")
    s.rcpt("bob@example.net")
    s.rcpt("carol@example.com")
    code, text = s.data(m.as_bytes())
    print(text.decode().rsplit(" ", 1)[-1] if code == 250 else "")
    sys.stderr.write(f"    {code} {text.decode()}\n")
PY
)
[ -n "$smtp_id" ] && ids+=("$smtp_id")

done_count() {
  local id n=0
  for id in "${ids[@]}"; do
    case $("$SC" show --json "$id") in *'"state" : "done"'*) n=$((n + 1)) ;; esac
  done
  echo "$n"
}
for _ in $(seq 300); do
  [ "$(done_count)" -eq ${#ids[@]} ] && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
delivered_count=$(done_count)
echo "==> what the daemon logged"
sed 's/^/    /' "$DEMO/stagecoach.log"
echo "==> stagecoach status"
"$SC" status | sed 's/^/    /'
echo "==> stagecoach show ${ids[0]}"
"$SC" show "${ids[0]}" | sed 's/^/    /'
echo "==> what the relay received ($(ls "$delivered" | wc -l) SMTP transactions; copied to $DEMO/delivered when the demo stops)"
grep -h '^X-Rcpt-Args' "$delivered"/* 2>/dev/null | sort | uniq -c | sed 's/^/    /' || true
echo "==> the archived copy (decorated: subject prefix, list headers, From rewritten to the list as for a DMARC p=reject author, footer)"
first=$(ls "$DEMO"/archive/demo/new/* 2>/dev/null | head -1 || true)
if [ -n "$first" ]; then tr -d "\r" <"$first" | head -40 | sed "s/^/    /"; else echo "    (nothing archived yet: see the log above)"; fi
if [ "$delivered_count" -ne 4 ]; then
  kill -0 "$daemon" 2>/dev/null || echo "==> the daemon is not running: see its log above" >&2
  echo "==> DEMO FAILED: $delivered_count of 4 messages were delivered within 30 s; the log, status and show output above say why" >&2
  exit 1
fi

echo "==> the dashboard: http://127.0.0.1:8470/ (from this machine; see the log above if the port was taken)"
# the login link holds the token (in the fragment, which no server sees)
if login_url=$("$SC" admin-url 2>/dev/null); then
  echo "    log in with: $login_url"
fi

if [ -t 0 ] && [ -t 1 ] && [ -z "${STAGECOACH_DEMO_EXIT:-}" ] && [ -z "${CI:-}" ]; then
  cat <<MSG

The daemon is still running (pid $daemon) on $DEMO/spool.
In another terminal try:
    export STAGECOACH_CONFIG=$DEMO/stagecoach.conf
    echo -e 'Subject: hi\n\nbody' | $SC inject --list demo.example.org you@example.org
    $SC list
Ctrl-C stops it.
MSG
  wait $daemon
fi
