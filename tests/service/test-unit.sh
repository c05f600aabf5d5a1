#!/usr/bin/env bash
# test-unit.sh — the installed stagecoach.service, sysusers.d and tmpfiles.d
# entries: `systemd-analyze verify` is clean (run on a copy whose
# ExecStart= is the installed-to-DESTDIR front, with MANPATH at its man
# pages so that Documentation= resolves), `systemd-analyze security
# --offline=yes` rates the exposure 2.0 or less ("OK"), the unit has the
# settings doc/install.md promises, systemd-sysusers creates the user and
# systemd-tmpfiles the folders in a scratch root.  TAP; a skip plan without
# systemd-analyze.
#   test-unit.sh MESON BUILD-ROOT BINDIR MANDIR UNIT SYSUSERS TMPFILES STATEDIR CONFDIR
set -uo pipefail

meson=$1 build=$2 bindir=$3 mandir=$4 unit_path=$5 sysusers_path=$6 tmpfiles_path=$7 state_dir=$8 conf_dir=$9
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null; then
	echo "1..0 # SKIP systemd-analyze is not installed (Debian: systemd)"
	exit 0 # TAP: the plan says skip
fi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '# %s\n' "$@"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "failed: $*"; fi
}

dest=$(mktemp -d "${TMPDIR:-/tmp}/sc-unit.XXXXXX")
trap 'rm -rf "$dest"' EXIT
if ! "$meson" install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1; then
	not_ok "meson install --destdir" "$(cat "$dest.log")"
	rm -f "$dest.log"
	echo "1..$n"
	exit 1
fi
rm -f "$dest.log"
unit=$dest$unit_path
check "the unit is installed at $unit_path" test -f "$unit"

# verify: every warning counts, not only the exit status
mkdir "$dest/verify"
sed "s|^ExecStart=$bindir/stagecoach |ExecStart=$dest$bindir/stagecoach |" "$unit" >"$dest/verify/stagecoach.service"
check "the copy's ExecStart= is the installed front" grep -q "^ExecStart=$dest$bindir/stagecoach " "$dest/verify/stagecoach.service"
# Documentation=man:… is looked up with man(1), at the installed pages
man_check=()
if ! command -v man >/dev/null; then
	man_check=(--man=no)
	echo "# man(1) is not installed: Documentation= not checked"
fi
out=$(MANPATH=$dest$mandir systemd-analyze verify "${man_check[@]}" "$dest/verify/stagecoach.service" 2>&1)
status=$?
if [ $status = 0 ] && [ -z "$out" ]; then
	ok "systemd-analyze verify: clean"
else
	not_ok "systemd-analyze verify: clean" "exit $status" "$out"
fi

# security: the overall exposure, and what is left open
out=$(systemd-analyze security --offline=yes "$unit" 2>&1)
level=$(sed -n 's/^.*Overall exposure level for stagecoach.service: \([0-9.]*\) \([A-Z]*\).*$/\1 \2/p' <<<"$out")
echo "$out" | grep '✗' | sed 's/^/# open: /'
echo "# systemd-analyze security --offline=yes: exposure $level"
if [ -n "$level" ] && awk -v l="${level% *}" -v max="$max_exposure" 'BEGIN { exit !(l <= max) }' &&
	[ "${level#* }" = OK ]; then
	ok "exposure $level <= $max_exposure"
else
	not_ok "exposure <= $max_exposure OK" "got: ${level:-nothing}" "$out"
fi

# what doc/install.md says the unit does
for setting in Type=notify "ExecReload=/bin/kill -HUP \$MAINPID" WatchdogSec= User=stagecoach \
	StateDirectory=stagecoach UMask=0077 ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
	PrivateDevices=yes NoNewPrivileges=yes "CapabilityBoundingSet=" \
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" SystemCallFilter=@system-service \
	MemoryDenyWriteExecute=yes "ConditionPathExists=$conf_dir/stagecoach.conf"; do
	case $setting in
	*=) check "the unit sets $setting" grep -qx "$setting.*" "$unit" ;;
	*) check "the unit sets $setting" grep -qxF "$setting" "$unit" ;;
	esac
done
check "the unit gives no capability (CapabilityBoundingSet= empty)" grep -qx "CapabilityBoundingSet=" "$unit"

# sysusers.d and tmpfiles.d, applied to a scratch root
mkdir -p "$dest/etc"
if out=$(systemd-sysusers --root="$dest" "$dest$sysusers_path" 2>&1); then
	ok "systemd-sysusers applies $sysusers_path"
else
	not_ok "systemd-sysusers applies $sysusers_path" "$out"
fi
check "… a system user stagecoach with home $state_dir" \
	grep -qE "^stagecoach:x:[0-9]+:[0-9]+:[^:]*:$state_dir:/usr/sbin/nologin$" "$dest/etc/passwd"
uid=$(awk -F: '$1 == "stagecoach" { print $3 }' "$dest/etc/passwd")
gid=$(awk -F: '$1 == "stagecoach" { print $4 }' "$dest/etc/passwd")
check "… a system uid ($uid)" test "${uid:-1000}" -lt 1000
if [ "$(id -u)" = 0 ]; then
	if out=$(systemd-tmpfiles --create --root="$dest" "$dest$tmpfiles_path" 2>&1); then
		ok "systemd-tmpfiles --create applies $tmpfiles_path"
	else
		not_ok "systemd-tmpfiles --create applies $tmpfiles_path" "$out"
	fi
	check "… $state_dir: 0750 stagecoach:stagecoach" test "$(stat -c '%a %u %g' "$dest$state_dir")" = "750 $uid $gid"
	check "… $conf_dir: 0750 root:stagecoach" test "$(stat -c '%a %u %g' "$dest$conf_dir")" = "750 0 $gid"
else
	skip "systemd-tmpfiles --create needs root to give the folders their owners"
fi

echo "1..$n"
[ "$failed" = 0 ]
