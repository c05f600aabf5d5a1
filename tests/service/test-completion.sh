#!/usr/bin/env bash
# test-completion.sh — data/completion/stagecoach, sourced in bash with
# bash-completion's helpers as the installed one is, completes what the
# program has: its commands (from `stagecoach --help`) and every command's
# long options (from `stagecoach COMMAND --help`).  TAP; a skip plan without
# bash-completion.
#   test-completion.sh COMPLETION-SCRIPT   ($STAGECOACH_BIN: the program)
set -uo pipefail

script=${1:?the completion script}
bin=${STAGECOACH_BIN:?}
helpers=/usr/share/bash-completion/bash_completion
if [ ! -r "$helpers" ]; then
	echo "1..0 # SKIP bash-completion is not installed ($helpers)"
	exit 0 # TAP: the plan says skip
fi
# bash-completion's helpers read an interactive shell's settings
# shellcheck disable=SC1090
source "$helpers"
# shellcheck disable=SC1090
source "$script"

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '# %s\n' "$@"; }

# What bash offers for the words given, the last being the one completed
# (sorted, one a line).
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_stagecoach stagecoach "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort -u
}

expect() {
	local what=$1 want=$2 got=$3
	if [ "$got" = "$want" ]; then
		ok "$what"
	else
		not_ok "$what" "want: $(echo $want)" "got:  $(echo $got)"
	fi
}

expect "stagecoach sh completes to show" "show" "$(complete_words stagecoach sh)"
expect "after global options too: stagecoach --config FILE -v sh" "show" \
	"$(complete_words stagecoach --config /etc/stagecoach/stagecoach.conf -v sh)"
expect "the global options" "$(printf '%s\n' --config --help --version --verbose | sort)" \
	"$(complete_words stagecoach --)"
expect "list --state: the states" "$(printf '%s\n' active dead deferred done held queued | sort)" \
	"$(complete_words stagecoach list --state '')"
expect "retry --state d: the states retry takes" "$(printf '%s\n' dead deferred)" \
	"$(complete_words stagecoach retry --state d)"
expect "a value is not completed as an option: inject --list -" "" \
	"$(complete_words stagecoach inject --list -)"
expect "sendmail's flags" "$(printf '%s\n' --list -F -f -i -oi -t | sort)" \
	"$(complete_words stagecoach sendmail -)"

# the commands: those `stagecoach --help` lists
commands=$("$bin" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }' | sort)
if [ "$(echo "$commands" | wc -l)" -lt 10 ]; then
	not_ok "stagecoach --help lists the commands" "$commands"
else
	expect "every command of stagecoach --help, and no other" "$commands" "$(complete_words stagecoach '')"
fi

# every command's long options: those its --help prints (sendmail takes
# sendmail(8)'s flags, checked above)
for command in $commands; do
	[ "$command" = sendmail ] && continue
	want=$("$bin" "$command" --help | grep -oE '(^|[ ,])--[a-z][a-z0-9-]*' | sed 's/^[ ,]*//' | sort -u)
	expect "$command: its long options" "$want" "$(complete_words stagecoach "$command" --)"
done

echo "1..$n"
[ "$failed" = 0 ]
