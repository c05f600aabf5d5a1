#!/usr/bin/env bash
# tests/docs/test-ops-backup.sh — doc/operations.md's backup of a live SQLite
# spool, command for command, while `stagecoach run` writes to it: messages
# are injected (handed to the daemon, which commits them and runs decorate
# and archive) the whole time.  TAP output.
#
# For each of `sqlite3 .backup` and `VACUUM INTO`: the copy passes
# PRAGMA integrity_check, has the live spool's schema version, and
# `stagecoach status` reads it with a configuration naming only the copy;
# its per-state counts (kept by triggers) agree with a count of its
# messages rows, so the copy is one consistent snapshot; `show` reads a
# message from it.  Also checked: the writes went on during both copies.
# Skips (77) without sqlite3.
set -euo pipefail

SC=${STAGECOACH_BIN:?STAGECOACH_BIN names the stagecoach binary}
if ! command -v sqlite3 >/dev/null; then
  echo "1..0 # SKIP no sqlite3 (Debian package sqlite3)"
  exit 0
fi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for line in "$@"; do echo "# $line"; done; }
check() {  # check DESCRIPTION COMMAND… — ok when COMMAND succeeds
  local description=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$description"; else not_ok "$description" "$out"; fi
}

work=$(mktemp -d /tmp/sc-ops-backup.XXXXXX)
daemon=
injector=
cleanup() {
  [ -z "$injector" ] || { kill "$injector" 2>/dev/null || true; wait "$injector" 2>/dev/null || true; }
  [ -z "$daemon" ] || { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

SPOOL=$work/spool
cat >"$work/stagecoach.conf" <<EOF
[stagecoach]
spool=$SPOOL
[admin]
listen=
[list:backup.example.org]
pipeline=decorate;archive
archive=maildir:$work/archive
from-rewrite=never
EOF
export STAGECOACH_CONFIG=$work/stagecoach.conf

"$SC" run >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 200); do
  [ -S "$SPOOL/ingress.sock" ] && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.05
done
if [ ! -S "$SPOOL/ingress.sock" ]; then
  echo "Bail out! stagecoach run did not start: $(cat "$work/daemon.log")"
  exit 1
fi

# The writer: one message after another until told to stop; each line of
# injected.log is one queue id, so its length says how far it got.
: >"$work/injected.log"
(
  i=0
  while [ ! -e "$work/stop" ]; do
    i=$((i + 1))
    printf 'From: a@example.org\nSubject: backup test %d\nMessage-ID: <backup-%d@example.org>\n\n%s\n' \
      "$i" "$i" "$(head -c 3000 /dev/zero | tr '\0' x)" |
      "$SC" inject --list backup.example.org --from a@example.org b@example.net c@example.com \
        >>"$work/injected.log" || exit 1
  done
) &
injector=$!
injected() { wc -l <"$work/injected.log"; }
for _ in $(seq 400); do
  [ "$(injected)" -ge 50 ] && break
  sleep 0.05
done
[ "$(injected)" -ge 50 ] && ok "50 messages injected into the running daemon before the first copy" ||
  not_ok "50 messages injected before the first copy" "only $(injected)" "$(cat "$work/daemon.log")"

# --- the commands of doc/operations.md, "Backing up a SQLite spool" ---
BACKUP=$work/backup
mkdir -p "$BACKUP/online" "$BACKUP/vacuum"
before=$(injected)
check "sqlite3 .backup of the live spool" \
  sqlite3 "$SPOOL/spool.db" ".backup '$BACKUP/online/spool.db'"
middle=$(injected)
check "VACUUM INTO of the live spool" \
  sqlite3 "$SPOOL/spool.db" "VACUUM INTO '$BACKUP/vacuum/spool.db'"
after=$(injected)
live_version=$(sqlite3 "$SPOOL/spool.db" 'PRAGMA user_version')

# the writer went on during the copies (each copy runs while it injects)
sleep 0.3
[ "$(injected)" -gt "$after" ] && [ "$after" -ge "$before" ] &&
  ok "the daemon went on accepting across the copies ($before, $middle, $after, then $(injected) injected)" ||
  not_ok "the daemon kept accepting during the copies" "$before $middle $after $(injected)"
kill -0 "$daemon" 2>/dev/null && ok "stagecoach run still runs" || not_ok "stagecoach run still runs" "$(cat "$work/daemon.log")"

for kind in online vacuum; do
  copy=$BACKUP/$kind
  integrity=$(sqlite3 "$copy/spool.db" 'PRAGMA integrity_check' 2>&1 || true)
  [ "$integrity" = ok ] && ok "$kind copy: PRAGMA integrity_check says ok" ||
    not_ok "$kind copy: PRAGMA integrity_check says ok" "$integrity"
  version=$(sqlite3 "$copy/spool.db" 'PRAGMA user_version')
  [ "$version" = "$live_version" ] && ok "$kind copy: schema version $version, as the live spool" ||
    not_ok "$kind copy: schema version" "copy $version, live $live_version"

  # stagecoach itself reads the copy: a configuration that names only it
  printf '[stagecoach]\nspool=%s\n' "$copy" >"$copy.conf"
  if status=$("$SC" --config "$copy.conf" status 2>&1); then
    ok "$kind copy: stagecoach status reads it"
    echo "$status" | sed 's/^/#   /'
  else
    not_ok "$kind copy: stagecoach status reads it" "$status"
  fi
  json=$("$SC" --config "$copy.conf" status --json 2>&1 || true)
  rows=$(sqlite3 "$copy/spool.db" "SELECT state || ' ' || count(*) FROM messages GROUP BY state ORDER BY state")
  counted=$(python3 -c '
import json, sys
counts = json.loads(sys.argv[1])
print("\n".join("%s %d" % (s, counts[s]) for s in sorted(["queued", "active", "deferred", "held", "done", "dead"]) if counts[s]))
' "$json" 2>&1 || true)
  total=$(sqlite3 "$copy/spool.db" 'SELECT count(*) FROM messages')
  if [ "$rows" = "$counted" ] && [ "$total" -ge "$before" ]; then
    ok "$kind copy: status's counts match its $total messages rows (one snapshot)"
  else
    not_ok "$kind copy: status's counts match its messages rows" "status: $counted" "rows: $rows" "total $total, $before injected before the copy"
  fi
  id=$(sqlite3 "$copy/spool.db" 'SELECT queue_id FROM messages ORDER BY id LIMIT 1')
  if shown=$("$SC" --config "$copy.conf" show "$id" 2>&1) && grep -q "^Queue id *$id" <<<"$shown"; then
    ok "$kind copy: stagecoach show $id reads the first message"
  else
    not_ok "$kind copy: stagecoach show reads the first message" "$shown"
  fi
done

touch "$work/stop"
wait "$injector" && ok "every inject succeeded" || not_ok "every inject succeeded" "$(tail -5 "$work/daemon.log")"
injector=
kill -TERM "$daemon"
wait "$daemon" && ok "stagecoach run stopped cleanly" || not_ok "stagecoach run stopped cleanly" "$(tail -5 "$work/daemon.log")"
daemon=
echo "1..$n"
[ "$failed" -eq 0 ]
