#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian 12 packages stagecoach needs, and
# only those that are missing.  Sourced by run.sh and test.sh.
#   install_deps build   — compiler, meson, libraries
#   install_deps run     — the above plus smtp-sink (postfix) for the demo mailer
#   install_deps test    — the above plus the real servers the tests use
#   install_deps package — the build set plus the Debian packaging tools
#   build_project DIR    — meson setup (once) and ninja
set -euo pipefail

STAGECOACH_BUILD_PACKAGES=(
  gcc pkg-config meson ninja-build gettext
  libglib2.0-dev libsoup-3.0-dev libsqlite3-dev libcurl4-openssl-dev
  libgmime-3.0-dev libjson-glib-dev
  libpq-dev    # the PostgreSQL spool backend (issue 10)
  libopendkim-dev libssl-dev libpsl-dev publicsuffix  # the sign stage, DMARC (issue 11)
  libsystemd-dev  # sd_notify: readiness, reload, watchdog for the Type=notify unit (issue 12)
  sqlite3 ca-certificates
)
STAGECOACH_TEST_PACKAGES=(
  postfix      # smtp-sink, smtp-source and a real smtpd for the SMTP tests
  mandoc       # man page lint
  openssl      # self-signed certificates for the TLS tests
  swaks libnet-ssleay-perl  # an SMTP client for the ingress listener tests (ssleay: its STARTTLS)
  python3      # the test-summary script
  mailman3     # GNU Mailman 3 as a client of the SMTP listener (tests/clients/)
  chromium nodejs npm  # the dashboard's browser test (tests/browser/)
  postgresql-15  # initdb/postgres for the private servers of the PostgreSQL tests
  dnsmasq-base python3-dkim python3-dnspython python3-nacl  # a real DNS server; dkimpy verifies signatures (issue 11)
  systemd bash-completion strace  # systemd-analyze verify/security, sysusers, tmpfiles; completion; the sandbox test (issue 12)
  graphviz python3-yaml  # doc/message-life.svg re-rendered by dot; the alert rules parsed (issue 12)
)
# The reliability suites (tests/reliability/) only.
STAGECOACH_RELIABILITY_PACKAGES=(
  faketime     # libfaketime: the clock-step rows of the fault matrix
)
# The Debian package (debian/, scripts/package.sh, tests/package/):
#   install_deps package; the package test needs them too, so also in 'test'.
STAGECOACH_PACKAGE_PACKAGES=(
  dpkg-dev debhelper lintian  # dpkg-buildpackage, dh with compat 13 and meson, the checks
)
# Fuzzing and sanitizers (scripts/fuzz.sh, scripts/test-sanitizers.sh, .ci/run):
#   install_deps fuzz
STAGECOACH_FUZZ_PACKAGES=(
  clang-14 libfuzzer-14-dev libclang-rt-14-dev  # libFuzzer targets, ASan/UBSan
  valgrind     # the unit suites under valgrind
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local pkg
  for pkg in "$@"; do
    # NodeSource's nodejs carries npm and conflicts with Debian's npm package.
    if [ "$pkg" = npm ] && command -v npm >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

install_deps() {
  local want=("${STAGECOACH_BUILD_PACKAGES[@]}")
  case "${1:-build}" in
    run) want+=(postfix) ;;
    test) want+=("${STAGECOACH_TEST_PACKAGES[@]}" "${STAGECOACH_RELIABILITY_PACKAGES[@]}" "${STAGECOACH_PACKAGE_PACKAGES[@]}") ;;
    package) want+=("${STAGECOACH_PACKAGE_PACKAGES[@]}") ;;
    fuzz) want+=("${STAGECOACH_TEST_PACKAGES[@]}" "${STAGECOACH_RELIABILITY_PACKAGES[@]}" "${STAGECOACH_PACKAGE_PACKAGES[@]}" "${STAGECOACH_FUZZ_PACKAGES[@]}") ;;
  esac
  case "${1:-build}" in
    test | fuzz) install_promtool || echo "==> no promtool: the alert rules test checks them without it" >&2 ;;
  esac
  local missing
  missing=$(missing_packages "${want[@]}")
  if [ -z "$missing" ]; then
    return 0
  fi
  echo "==> installing: $(echo $missing | tr '\n' ' ')"
  # Postfix must not configure or start a system mail server: the tests
  # run private instances.
  echo 'postfix postfix/main_mailer_type select No configuration' | as_root debconf-set-selections
  # Mailman 3: no dbconfig database, no HyperKitty; the test runs a private
  # instance and the system one must not start (see the policy-rc.d below).
  printf '%s\n' 'mailman3 mailman3/dbconfig-install boolean false' \
    'mailman3 mailman3/config_hyperkitty boolean false' | as_root debconf-set-selections
  # Keep dpkg from starting services (mailman3, cron, postgresql) where the machine has
  # no policy-rc.d of its own; removed again afterwards.
  local own_policy=0 own_createcluster=0 rc=0
  # PostgreSQL: the binaries only.  Without this, the first install of a
  # major version runs pg_createcluster for a system "15 main" cluster
  # (postgresql-common reads createcluster.d); the tests initdb their own.
  local createcluster=/etc/postgresql-common/createcluster.d/stagecoach-tests.conf
  if [[ " $(echo $missing) " == *" postgresql-15 "* ]] && [ ! -e "$createcluster" ]; then
    as_root mkdir -p "$(dirname "$createcluster")"
    printf '# temporary, from stagecoach scripts/deps.sh\ncreate_main_cluster = false\n' |
      as_root tee "$createcluster" >/dev/null
    own_createcluster=1
  fi
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, from stagecoach scripts/deps.sh\nexit 101\n' |
      as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
  # shellcheck disable=SC2086
  [ $rc != 0 ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing || rc=$?
  [ $own_policy = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
  [ $own_createcluster = 0 ] || as_root rm -f "$createcluster"
  return $rc
}

# install_promtool — promtool for the alert rules test (doc/meson.build,
# alert-rules), without a Prometheus server: Debian 12 ships it only in the
# `prometheus` package, whose install starts the server.  So the package is
# downloaded and unpacked into build-cache/ (ignored by git, like build*/),
# where the test looks for it; nothing is installed.
STAGECOACH_PROMTOOL_CACHE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build-cache/prometheus"
install_promtool() {
  local cache=$STAGECOACH_PROMTOOL_CACHE
  if command -v promtool >/dev/null || [ -x "$cache/usr/bin/promtool" ]; then
    return 0
  fi
  echo "==> unpacking promtool from Debian's prometheus package into $cache"
  mkdir -p "$cache"
  (cd "$cache" && rm -f prometheus_*.deb && apt-get download -q prometheus &&
    dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb usr/bin/prometheus)
}

# install_browser_deps — playwright-core for tests/browser/, pinned by its
# package-lock.json; it drives the distribution's Chromium, so it must not
# download a browser of its own.
install_browser_deps() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
  if [ -d "$dir/node_modules" ] || ! command -v npm >/dev/null; then
    return 0
  fi
  echo "==> installing the browser test's node modules"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund
}

# build_project DIR — configure once, then build.
build_project() {
  local dir=$1
  if [ ! -f "$dir/build.ninja" ]; then
    # CI builds with every warning an error (warning_level=3 is the default)
    meson setup "$dir" --buildtype=debugoptimized ${CI:+-Dwerror=true}
  fi
  ninja -C "$dir"
}
