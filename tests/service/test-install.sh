#!/usr/bin/env bash
# test-install.sh — `meson install --destdir` puts every file where it
# belongs, and the installed tree runs: the front (bin/stagecoach) finds
# the installed stagecoach-main, the daemon starts from it, a link named
# sendmail to the front hands a message over as sendmail(8) does, and the
# installed example configuration passes check-config.  TAP.
#   test-install.sh MESON BUILD-ROOT SOURCE-ROOT VERSION PREFIX BINDIR MAIN-DIR LOCALEDIR SENDMAIL-LINK -- EXPECTED-PATH...
# (absolute install paths, as meson computed them; SENDMAIL-LINK may be "")
set -uo pipefail

meson=$1 build=$2 source=$3 version=$4 prefix=$5 bindir=$6 main_dir=$7 localedir=$8 sendmail_link=$9
shift 9
[ "$1" = -- ] && shift

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '# %s\n' "$@"; }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "failed: $*"; fi
}

dest=$(mktemp -d "${TMPDIR:-/tmp}/sc-install.XXXXXX")
work=$(mktemp -d "${TMPDIR:-/tmp}/sc-install-run.XXXXXX")
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then kill -KILL "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; fi
	rm -rf "$dest" "$work"
}
trap cleanup EXIT

if "$meson" install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$work/install.log" 2>&1; then
	ok "meson install --destdir"
else
	not_ok "meson install --destdir" "$(cat "$work/install.log")"
	echo "1..$n"
	exit 1
fi

# everything meson means to install is there …
missing=$("$meson" introspect "$build" --installed |
	python3 -c 'import json, sys; [print(p) for p in json.load(sys.stdin).values()]' |
	while read -r path; do [ -e "$dest$path" ] || [ -L "$dest$path" ] || echo "$path"; done)
check "every file of meson's install plan is installed" test -z "$missing"
[ -z "$missing" ] || echo "# missing: $missing"

# … and the plan has what an operator and Debian expect
for path in "$@"; do
	check "installed: $path" test -e "$dest$path"
done
if [ -r "$source/po/LINGUAS" ]; then
	for lang in $(sed 's/#.*//' "$source/po/LINGUAS"); do
		check "installed: the $lang catalogue" test -e "$dest$localedir/$lang/LC_MESSAGES/stagecoach.mo"
	done
fi
check "nothing is installed as /usr/sbin/sendmail" test ! -e "$dest/usr/sbin/sendmail"
if [ -n "$sendmail_link" ]; then
	check "-Dsendmail_link: $sendmail_link points at the front" \
		test "$(readlink "$dest$sendmail_link")" = "$bindir/stagecoach"
fi

front=$dest$bindir/stagecoach
main=$dest$main_dir/stagecoach-main
unit=$(for path in "$@"; do case $path in */stagecoach.service) echo "$dest$path" ;; esac; done)
check "the unit starts the installed front: ExecStart=$bindir/stagecoach" \
	grep -q "^ExecStart=$bindir/stagecoach " "$unit"

out=$("$front" --version 2>&1)
check "the installed stagecoach --version runs" test "$(echo "$out" | head -1 | cut -d' ' -f1-2)" = "stagecoach $version"
echo "$out" | sed 's/^/# /'

# The installed front runs the installed stagecoach-main: the daemon's
# process (the same pid, execv) is that file.
spool=$work/spool
cat >"$work/stagecoach.conf" <<CONF
[stagecoach]
spool=$spool
default-list=install.example.org
[list:install.example.org]
pipeline=archive
archive=maildir:archive
CONF
"$front" --config "$work/stagecoach.conf" run >"$work/run.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
	[ -S "$spool/ingress.sock" ] && break
	sleep 0.1
done
exe=$(readlink "/proc/$daemon_pid/exe")
check "the installed front runs the installed stagecoach-main" test "$exe" = "$(readlink -f "$main")"
[ "$exe" = "$(readlink -f "$main")" ] || echo "# ran: $exe; log: $(cat "$work/run.log")"

# sendmail: a link of that name to the front, as doc/install.md describes
mkdir "$work/bin"
ln -s "$front" "$work/bin/sendmail"
message=$'From: a@example.org\nTo: list@install.example.org\nSubject: install\n\nbody\n'
out=$(printf '%s' "$message" | STAGECOACH_CONFIG=$work/stagecoach.conf "$work/bin/sendmail" -t -oi 2>&1)
check "a sendmail link to the installed front hands a message to the daemon (exit 0)" test $? = 0
[ -z "$out" ] || echo "# sendmail said: $out"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
status=$?
daemon_pid=
check "the installed daemon stops on SIGTERM (exit 0)" test "$status" = 0
# no daemon: the front runs the installed stagecoach-main in sendmail mode
out=$(printf '%s' "$message" | STAGECOACH_CONFIG=$work/stagecoach.conf "$work/bin/sendmail" -t -oi 2>&1)
check "without a daemon the sendmail link writes the spool itself (exit 0)" test $? = 0
[ -z "$out" ] || echo "# sendmail said: $out"
count=$("$front" --config "$work/stagecoach.conf" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])')
check "both messages are in the spool ($count)" test "$count" = 2

# without its stagecoach-main the installed front says so (69), unless
# another install sits at the configured path
mv "$main" "$main.moved"
if [ -e "$prefix" ] && [ -x "$main_dir/stagecoach-main" ]; then
	ok "# SKIP $main_dir/stagecoach-main exists on this machine"
else
	out=$("$front" status 2>&1)
	status=$?
	check "without an installed stagecoach-main the front exits 69" test "$status" = 69
	check "… naming what it could not run" grep -q "cannot run $main_dir/stagecoach-main" <<<"$out"
fi
mv "$main.moved" "$main"

# the examples folder is a configuration check-config accepts as it is
examples=$(for path in "$@"; do case $path in */stagecoach.conf.example) echo "$dest$path" ;; esac; done)
out=$("$front" --config "$examples" check-config 2>&1)
check "check-config accepts the installed example configuration" test $? = 0
echo "$out" | sed 's/^/# /'

echo "1..$n"
[ "$failed" = 0 ]
