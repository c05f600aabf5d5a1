#!/usr/bin/env bash
# scripts/package.sh — build the Debian package (debian/) and check it with
# lintian.  Installs the build dependencies that are missing, builds from a
# copy of the working tree (dpkg-buildpackage writes its results into the
# source tree's parent folder, which would litter the checkout's), and leaves
# the .deb, .changes, .dsc and source tarball in OUT (default build-deb/).
#   scripts/package.sh                         build, test the 'unit' suite
#   DEB_BUILD_OPTIONS=nocheck scripts/package.sh   no tests: faster
#   OUT=/tmp/debs scripts/package.sh
# Prints lintian's output, then the path of the .deb on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
. scripts/deps.sh
install_deps package

out=${OUT:-build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/stagecoach-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/stagecoach"
mkdir "$tree"

# The working tree's files as git sees them (tracked and new, not ignored):
# no build folders, no .git; uncommitted changes are in.  A tree without git
# (an unpacked tarball) is copied whole but for its build folders.
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$src" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -C "$src" --null -T - -cf - | tar -C "$tree" -xf -
else
  tar -C "$src" --exclude='./build*' --exclude='./_build' --exclude='./obj-*' -cf - . |
    tar -C "$tree" -xf -
fi

# debian/control's Build-Depends decide: what scripts/deps.sh did not
# install comes through apt-get build-dep on the copy.
if ! (cd "$tree" && dpkg-checkbuilddeps) 2>/dev/null; then
  echo "==> installing the missing build dependencies (apt-get build-dep)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends "$tree"
  if ! (cd "$tree" && dpkg-checkbuilddeps); then
    echo "package.sh: debian/control's Build-Depends are not all installed" >&2
    exit 1
  fi
fi

echo "==> dpkg-buildpackage in $tree (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
(cd "$tree" && dpkg-buildpackage -us -uc) >"$work/build.log" 2>&1 || {
  tail -n 80 "$work/build.log" >&2
  echo "package.sh: dpkg-buildpackage failed; the log's end is above" >&2
  exit 1
}

version=$(cd "$tree" && dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
changes="stagecoach_${version}_${arch}.changes"
# the files the .changes names, and the .changes and .buildinfo themselves
rm -f "$out"/stagecoach_*
for f in $(sed -n '/^Files:/,/^[^ ]/{/^ /p}' "$work/$changes" | awk '{print $5}') "$changes"; do
  cp "$work/$f" "$out/"
done
cp "$work/build.log" "$out/build.log"

echo "==> lintian $changes"
# lintian's default profile; exit status 0 unless it has errors to report
lintian_rc=0
(cd "$out" && lintian "$changes") | tee "$out/lintian.txt" || lintian_rc=$?

deb="$out/stagecoach_${version}_${arch}.deb"
echo "==> the package: $deb"
echo "    install it with: apt-get install $deb"
exit $lintian_rc
