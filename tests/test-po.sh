#!/usr/bin/env bash
# tests/test-po.sh — meson's "po" test: every catalogue in po/LINGUAS is
# complete and current.  For each: msgfmt --check is clean; its statistics
# say 0 untranslated and 0 fuzzy (msgattrib agrees); and merged with a pot
# extracted afresh from po/POTFILES.in (the keywords of meson's glib
# preset), no entry comes out untranslated or fuzzy, so a string wrapped
# in _() since the last update fails here until it is translated.
# Usage: test-po.sh SOURCE-ROOT
set -u
root=${1:?usage: test-po.sh SOURCE-ROOT}
po="$root/po"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
n=0

for tool in msgfmt msgattrib msgmerge xgettext; do
  command -v "$tool" >/dev/null || { echo "Bail out! $tool is missing (Debian package gettext)"; exit 1; }
done

# the glib preset's keywords (meson's i18n module), JavaScript's defaults for app.js
(cd "$root" && xgettext --package-name=stagecoach --from-code=UTF-8 --add-comments \
  --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 --keyword=g_dcgettext:2 \
  --keyword=g_dngettext:2,3 --keyword=g_dpgettext2:2c,3 \
  --flag=N_:1:pass-c-format --flag=C_:2:pass-c-format --flag=NC_:2:pass-c-format \
  --flag=g_dngettext:2:pass-c-format --flag=g_strdup_printf:1:c-format \
  --flag=g_string_printf:2:c-format --flag=g_string_append_printf:2:c-format \
  --flag=g_error_new:3:c-format --flag=g_set_error:4:c-format \
  -f po/POTFILES.in -o "$tmp/fresh.pot") || { echo "Bail out! xgettext failed"; exit 1; }
total=$(grep -c '^msgid ' "$tmp/fresh.pot")

# "12 translated messages, 3 fuzzy translations, 1 untranslated message."
counts() {
  local stats=$1 what=$2
  grep -oE "[0-9]+ $what" <<<"$stats" | grep -oE '^[0-9]+' || echo 0
}

while read -r lang; do
  case $lang in ''|'#'*) continue ;; esac
  file="$po/$lang.po"
  n=$((n + 1))
  if ! stats=$(LC_ALL=C msgfmt --check --statistics -o /dev/null "$file" 2>&1); then
    echo "not ok $n - $lang: msgfmt --check: $stats"; failed=1; continue
  fi
  translated=$(counts "$stats" 'translated')
  fuzzy=$(counts "$stats" 'fuzzy')
  untranslated=$(counts "$stats" 'untranslated')
  if [ "$fuzzy" != 0 ] || [ "$untranslated" != 0 ] ||
     [ -n "$(msgattrib --untranslated "$file")" ] || [ -n "$(msgattrib --only-fuzzy "$file")" ]; then
    echo "not ok $n - $lang: $stats"; failed=1; continue
  fi
  echo "ok $n - $lang: msgfmt --check clean: $stats"

  n=$((n + 1))
  msgmerge --quiet --no-fuzzy-matching -o "$tmp/$lang.po" "$file" "$tmp/fresh.pot"
  merged=$(LC_ALL=C msgfmt --statistics -o /dev/null "$tmp/$lang.po" 2>&1)
  missing=$(msgattrib --untranslated --no-obsolete "$tmp/$lang.po" | grep -c '^msgid ' || true)
  if [ "$missing" != 0 ] || [ "$(counts "$merged" 'fuzzy')" != 0 ]; then
    echo "not ok $n - $lang is not current with the sources: $merged"
    msgattrib --untranslated --no-obsolete --no-wrap "$tmp/$lang.po" | grep '^msgid ' | grep -v '^msgid ""$' | sed 's/^/# /' | head -20
    failed=1
  else
    echo "ok $n - $lang is current with the sources ($((total - 1)) messages in a fresh pot): $merged"
  fi
done <"$po/LINGUAS"
[ "$n" -gt 0 ] || { echo "Bail out! no language in po/LINGUAS"; exit 1; }
echo "1..$n"
exit $failed
