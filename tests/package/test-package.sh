#!/usr/bin/env bash
# tests/package/test-package.sh — the Debian package, end to end, on this
# machine: scripts/package.sh builds it (lintian must print no E: or W:
# line), apt installs the .deb, the installed program runs (--version,
# check-config on the installed configurations), the system user and the
# unit are there, and `apt-get purge` takes every file away again.
#
# Needs root or passwordless sudo (apt, dpkg); otherwise it exits 77, which
# meson shows as SKIP.  Also skips when a stagecoach package is installed
# already: the test purges what it installs, and an operator's is not ours.
# TAP-style lines on stdout ("ok N - ..."), so scripts/test-summary.py counts
# every check; exit 0 when all pass, 1 when one fails.
#
# The package's own 'unit' tests are not run here (DEB_BUILD_OPTIONS=nocheck):
# the unit suite runs in the same meson test run anyway; nocheck also builds
# only what is installed (debian/rules).  parallel=2: the CI machine's cores.
#   SC_PACKAGE_OUT=DIR   keep the build in DIR (default: a temporary folder)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
START=$SECONDS

skip() { echo "1..0 # SKIP $*"; exit 77; }

if [ "$(id -u)" -eq 0 ]; then
  ROOT=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  ROOT=(sudo -n)
else
  skip "needs root or passwordless sudo (apt-get install, apt-get purge)"
fi
[ -r /etc/debian_version ] && command -v apt-get >/dev/null || skip "not a Debian system"
# one package test at a time on a machine (two build trees' test runs would
# install and purge the same package under each other)
exec 9>>"${SC_PACKAGE_LOCK:-/run/lock/stagecoach-package-test.lock}"
flock -w 900 9 || { echo "Bail out! another package test held the lock for 15 min"; exit 1; }
if dpkg-query -W -f='${Status}' stagecoach 2>/dev/null | grep -q 'ok installed\|config-files'; then
  skip "a stagecoach package is installed already; this test would purge it"
fi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {  # check DESCRIPTION COMMAND...: one TAP line for the command's status
  local what=$1; shift
  if "$@" >"$work/out" 2>&1; then ok "$what"; else not_ok "$what"; sed 's/^/# /' "$work/out"; fi
}
as_root() { "${ROOT[@]}" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/stagecoach-pkgtest.XXXXXX")
out=${SC_PACKAGE_OUT:-$work/deb}
own_policy=0
user_before=0
getent passwd stagecoach >/dev/null && user_before=1
state_before=0
[ -e /var/lib/stagecoach ] && state_before=1

cleanup() {
  # whatever the outcome: the package gone, and what the test created
  if dpkg-query -W -f='${Status}' stagecoach 2>/dev/null | grep -q 'ok installed\|config-files'; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 stagecoach >/dev/null 2>&1
  fi
  # Debian leaves system users and their state behind on purge (policy
  # 9.2.2); the test removes them when it created them.
  if [ $user_before = 0 ]; then
    ! getent passwd stagecoach >/dev/null || as_root userdel stagecoach 2>/dev/null
    ! getent group stagecoach >/dev/null || as_root groupdel stagecoach 2>/dev/null
  fi
  [ $state_before = 1 ] || as_root rm -rf /var/lib/stagecoach
  [ $own_policy = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
  as_root rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
echo "# building with scripts/package.sh (DEB_BUILD_OPTIONS=nocheck parallel=2)"
t0=$SECONDS
if as_root env DEB_BUILD_OPTIONS="nocheck parallel=2" OUT="$out" "$SRC/scripts/package.sh" >"$work/package.log" 2>&1; then
  ok "scripts/package.sh builds the package and lintian reports no error ($((SECONDS - t0)) s)"
else
  not_ok "scripts/package.sh builds the package and lintian reports no error"
  tail -n 60 "$work/package.log" | sed 's/^/# /'
fi
deb=$(tail -n 2 "$work/package.log" | sed -n 's/^==> the package: //p')
if [ -n "$deb" ] && [ -f "$deb" ]; then ok "the .deb is $deb"; else not_ok "package.sh names a .deb that exists"; echo "1..$n"; exit 1; fi

# lintian (default profile) as package.sh ran it: no error and no warning
if grep -E '^[EW]: ' "$out/lintian.txt" | sed 's/^/# /' | grep .; then
  not_ok "lintian prints no E: or W: line"
else
  ok "lintian prints no E: or W: line ($(wc -l <"$out/lintian.txt") lines in all)"
fi

# ---------------------------------------------------------------- install
# Not booted with systemd here (a container): dh_installsystemd's postinst
# only enables the unit (symlinks) and starts nothing without
# /run/systemd/system.  On a machine booted with systemd a policy-rc.d that
# says 101 keeps deb-systemd-invoke from starting the service for the test.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# temporary, from stagecoach tests/package/test-package.sh\nexit 101\n' |
    as_root tee /usr/sbin/policy-rc.d >/dev/null && as_root chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
# a path (./x.deb): apt resolves its Depends from the archive, dpkg -i would not
check "apt-get install $deb" \
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "$deb"
check "dpkg reports stagecoach installed" \
  sh -c "dpkg-query -W -f='\${Status}' stagecoach | grep -qx 'install ok installed'"

check "postinst started no daemon (not booted with systemd, or policy-rc.d)" \
  sh -c '! pgrep -u stagecoach >/dev/null'

unset STAGECOACH_CONFIG
check "stagecoach is /usr/bin/stagecoach" test "$(command -v stagecoach)" = /usr/bin/stagecoach
check "stagecoach --version names version 0.1.0" sh -c '/usr/bin/stagecoach --version | grep -q "^stagecoach 0\.1\.0"'
# built from a copy without .git: no revision, not the version again as one
check "stagecoach --version names no git revision outside git" sh -c '[ "$(/usr/bin/stagecoach --version | head -n 1)" = "stagecoach 0.1.0" ]'
/usr/bin/stagecoach --version 2>&1 | sed 's/^/# /'
check "stagecoach-main runs" /usr/libexec/stagecoach/stagecoach-main --help
check "the sendmail link is /usr/libexec/stagecoach/sendmail, to the front" \
  test "$(readlink -f /usr/libexec/stagecoach/sendmail)" = /usr/bin/stagecoach
check "/usr/sbin/sendmail is not the package's" sh -c '! dpkg-query -S /usr/sbin/sendmail 2>/dev/null | grep -q "^stagecoach:"'

# sysusers and tmpfiles ran in postinst
check "the stagecoach system user exists (sysusers)" \
  sh -c 'getent passwd stagecoach | awk -F: "\$3 < 1000 && \$6 == \"/var/lib/stagecoach\" { found = 1 } END { exit !found }"'
check "/var/lib/stagecoach is 0750 stagecoach:stagecoach (tmpfiles)" \
  test "$(stat -c '%a %U:%G' /var/lib/stagecoach 2>&1)" = "750 stagecoach:stagecoach"
check "/etc/stagecoach is 0750 root:stagecoach (tmpfiles)" \
  test "$(stat -c '%a %U:%G' /etc/stagecoach 2>&1)" = "750 root:stagecoach"

# the unit: installed, enabled by deb-systemd-helper, valid as installed
unit=$(dpkg-query -L stagecoach | grep -E '^(/usr)?/lib/systemd/system/stagecoach\.service$' | head -n 1)
if [ -n "$unit" ] && [ -f "$unit" ]; then ok "the unit is installed: $unit"; else not_ok "the unit is installed"; fi
check "the unit is enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/stagecoach.service
if command -v systemd-analyze >/dev/null && [ -n "$unit" ]; then
  # as installed: ExecStart= names the installed binary, User= the new user
  check "systemd-analyze verify $unit: clean" sh -c 'out=$(systemd-analyze verify "$1" 2>&1) || s=$?; echo "$out"; [ -z "$out" ] && [ "${s:-0}" = 0 ]' - "$unit"
else
  ok "systemd-analyze verify # SKIP no systemd-analyze"
fi

# the conffile, by the default path and by --config (as root: check-config
# only reads; it does not create the spool), and as the daemon's user
check "/etc/stagecoach/stagecoach.conf is a conffile" \
  grep -qx /etc/stagecoach/stagecoach.conf /var/lib/dpkg/info/stagecoach.conffiles
check "stagecoach check-config (the default /etc/stagecoach/stagecoach.conf)" as_root /usr/bin/stagecoach check-config
check "stagecoach --config /etc/stagecoach/stagecoach.conf check-config" \
  as_root /usr/bin/stagecoach --config /etc/stagecoach/stagecoach.conf check-config
check "check-config as the stagecoach user (the daemon reads it through its group)" \
  as_root setpriv --reuid=stagecoach --regid=stagecoach --init-groups /usr/bin/stagecoach check-config
check "the spool is /var/lib/stagecoach" sh -c "${ROOT[*]} /usr/bin/stagecoach check-config | grep -q '^spool: sqlite at /var/lib/stagecoach'"
# the guides the installed README names are there (doc/NAME.md, uncompressed)
check "every guide the installed README names is installed beside it" sh -c '
  cd /usr/share/doc/stagecoach && [ -f README ] || exit 1
  for f in $(grep -o "doc/[A-Za-z0-9_.-]*[.]\(md\|svg\)" README | sort -u); do
    [ -f "$f" ] || { echo "# missing: $f"; exit 1; }
  done'
# the full example from the documentation, as installed (its footer beside it)
examples=/usr/share/doc/stagecoach/examples
check "stagecoach --config $examples/stagecoach.conf.example check-config" \
  /usr/bin/stagecoach --config $examples/stagecoach.conf.example check-config
# The first start, as the unit makes it (less systemd's sandbox): the daemon
# as user stagecoach on the conffile, in a private network namespace so that
# its 127.0.0.1:8470 is nobody else's, with a NOTIFY_SOCKET of our own that
# stands in for systemd's: ready when it says READY=1 (Type=notify), then
# `status` as the same user, the dashboard's port answers, and SIGTERM ends
# it with 0.  A private PID namespace too: nothing it starts outlives it.
first_start() {
  as_root unshare --net --pid --fork --kill-child bash -c '
    set -u
    ip link set lo up
    dir=$(mktemp -d) && chmod 755 "$dir" && sock=$dir/notify
    trap "rm -rf $dir" EXIT
    as_sc="setpriv --reuid=stagecoach --regid=stagecoach --init-groups --"
    python3 -c "
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.settimeout(30)
open(sys.argv[1] + \".up\", \"w\").close()
while True:
    lines = s.recv(4096).decode().splitlines()
    if \"READY=1\" in lines:
        print(\"# READY=1\"); break
" "$sock" & listener=$!
    for _ in $(seq 100); do [ -e "$sock.up" ] && break; sleep 0.1; done
    NOTIFY_SOCKET=$sock $as_sc /usr/bin/stagecoach --config /etc/stagecoach/stagecoach.conf run & pid=$!
    status=0
    wait $listener || { echo "no READY=1 within 30 s"; status=1; }
    [ $status != 0 ] || $as_sc /usr/bin/stagecoach status || status=1
    [ $status != 0 ] || (exec 3<>/dev/tcp/127.0.0.1/8470) || { echo "nothing on 127.0.0.1:8470"; status=1; }
    kill -TERM $pid
    wait $pid || { echo "the daemon exited with $?"; status=1; }
    exit $status'
}
if command -v unshare >/dev/null && command -v ip >/dev/null; then
  check "the daemon runs on the installed configuration as user stagecoach, and stops on SIGTERM" first_start
  check "its spool is the daemon's: /var/lib/stagecoach/spool.db owned by stagecoach" \
    test "$(stat -c %U /var/lib/stagecoach/spool.db 2>&1)" = stagecoach
else
  ok "the daemon runs on the installed configuration # SKIP no unshare or ip"
fi
# the translations the package ships are the ones the program finds
mos=$(dpkg-query -L stagecoach | sed -n 's|^/usr/share/locale/\([^/]*\)/LC_MESSAGES/stagecoach\.mo$|\1|p')
for lang in $mos; do
  check "LANGUAGE=$lang stagecoach --help is translated (/usr/share/locale/$lang)" sh -c \
    '[ "$(env LC_ALL=C.UTF-8 LANGUAGE=$1 /usr/bin/stagecoach --help 2>&1)" != "$(env LC_ALL=C.UTF-8 LANGUAGE=en /usr/bin/stagecoach --help 2>&1)" ]' - "$lang"
done
[ -n "$mos" ] || ok "translations # SKIP the package ships none (po/LINGUAS)"
check "the man pages are installed" test -f /usr/share/man/man1/stagecoach.1.gz -a -f /usr/share/man/man5/stagecoach.conf.5.gz
check "the bash completion is installed" test -f /usr/share/bash-completion/completions/stagecoach

# ---------------------------------------------------------------- purge
dpkg-query -L stagecoach >"$work/files" 2>/dev/null
check "apt-get purge stagecoach" \
  as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 stagecoach
check "dpkg no longer knows stagecoach" sh -c "! dpkg-query -W stagecoach 2>/dev/null | grep -q ."
# files and links, not folders (nor /lib, a link to usr/lib on merged-/usr)
left=$(while read -r f; do { [ -f "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ] && echo "$f"; done <"$work/files")
if [ -z "$left" ]; then ok "every file of the package is gone ($(wc -l <"$work/files") paths)"; else not_ok "every file of the package is gone"; echo "$left" | sed 's/^/# left: /'; fi
check "/etc/stagecoach is gone (the conffile purged)" test ! -e /etc/stagecoach
check "the unit's enable link is gone" test ! -e /etc/systemd/system/multi-user.target.wants/stagecoach.service

echo "1..$n"
echo "# the package test took $((SECONDS - START)) s"
[ $failed = 0 ]
