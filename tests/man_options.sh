#!/bin/sh
# The manual pages against --help (issue 16): every option list that
# `man` renders equals the one the program prints, for simclrc(1) and, in
# simclrc-binary(1), the training binary's own options and each
# subcommand's. The pages are generated from --help (tools/help2man.sh);
# this catches a generator that drops, mangles or invents entries, and a
# page left stale.
#   man_options.sh SIMCLRC SIMCLRC.1 TRAINING_BINARY SIMCLRC-BINARY.1
set -eu
simclrc=$1 page=$2 binary=$3 binpage=$4
command -v man >/dev/null 2>&1 || { echo "man is not installed (man-db): skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The terms of the "options:" section of a --help text on stdin.
help_opts() {
  awk '/^[a-z][a-z ]*:$/ { sec = $0; next }
       /^[^ ]/ { sec = "" }
       sec == "options:" && /^  -/ { t = substr($0, 3); if (match(t, /  +/)) t = substr(t, 1, RSTART - 1); print t }'
}
# The option terms of section $1 (and subsection $2, if given) of a page
# rendered by man: terms stand alone on lines indented 7 columns.
man_opts() {
  awk -v want="$1" -v wantsub="${2:-}" '
    /^[^ ]/ { sec = $0; sub_ = ""; next }
    /^   [^ ]/ { sub_ = substr($0, 4); next }
    sec == want && sub_ == wantsub && /^       -/ { sub(/^ +/, ""); sub(/ +$/, ""); print }'
}
render() { MANWIDTH=200 man -l "$1" 2>/dev/null | sed 's/.\x08//g'; }

fails=0
compare() { # what, help terms file, man terms file
  if [ ! -s "$2" ]; then echo "FAIL $1: no options in --help (the parser is broken)"; fails=1; return; fi
  if diff -u "$2" "$3" >"$tmp/diff"; then
    echo "ok   $1: $(wc -l <"$2") options"
  else
    echo "FAIL $1: the manual's options differ from --help:"; cat "$tmp/diff"; fails=1
  fi
}

render "$page" >"$tmp/simclrc.txt"
grep -q '^SIMCLRC(1)' "$tmp/simclrc.txt" || { echo "FAIL: man does not render $page"; exit 1; }
"$simclrc" --help | help_opts >"$tmp/h"
man_opts OPTIONS <"$tmp/simclrc.txt" >"$tmp/m"
compare "simclrc" "$tmp/h" "$tmp/m"

render "$binpage" >"$tmp/binary.txt"
"$binary" --help | help_opts >"$tmp/h"
man_opts OPTIONS <"$tmp/binary.txt" >"$tmp/m"
compare "training binary" "$tmp/h" "$tmp/m"
subs=$("$binary" --help | awk '/^subcommands:$/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }')
[ -n "$subs" ] || { echo "FAIL: no subcommands in the training binary's --help"; exit 1; }
for s in $subs; do
  "$binary" "$s" --help | help_opts >"$tmp/h"
  man_opts "SUBCOMMAND $s" options <"$tmp/binary.txt" >"$tmp/m"
  compare "$s" "$tmp/h" "$tmp/m"
done
exit $fails
