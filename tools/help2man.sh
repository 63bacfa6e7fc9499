#!/bin/sh
# Manual pages from the programs' own --help, so that the two cannot drift
# apart: the help texts in the C code are the one source, and the build
# regenerates the pages whenever the programs change (man/CMakeLists.txt).
#
#   tools/help2man.sh simclrc SIMCLRC OUT.1    simclrc(1)
#   tools/help2man.sh binary BINARY OUT.1      simclrc-binary(1): a training
#                                              binary's --help and every
#                                              subcommand's --help
#
# The help format it reads: "usage: ..." (continued by indented lines),
# paragraphs, "heading:" lines of lower-case words, entries "  TERM  text"
# (two spaces, the term, two or more spaces, the text, continued by lines
# indented further), and "exit status: ..." paragraphs. Every entry's term
# gets a line of its own in the page (".br" after the tag), which
# tests/man_options.sh relies on.
set -eu

mode=$1 prog=$2 out=$3
version=$("$prog" --version | sed -n '1s/.*simclrc \([0-9][0-9.]*\).*/\1/p')
[ -n "$version" ] || { echo "help2man.sh: cannot read the version of $prog" >&2; exit 1; }

# help2roff SECTION_MACRO: help text on stdin, roff on stdout. Headings
# become SECTION_MACRO (.SH for a page's top level, .SS inside a
# subcommand); the usage and the first paragraphs are the synopsis and the
# description at the top level.
help2roff() {
  awk -v H="$1" '
    function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
    function line(s) { s = esc(s); if (s ~ /^[.\x27]/) s = "\\&" s; print s }
    function heading(t) {
      if (H == ".SH") t = toupper(t)
      print H " " t; state = "text"
    }
    BEGIN { state = "text"; described = 0 }
    /^usage: / {
      if (H == ".SH") print ".SH SYNOPSIS"
      print ".nf"; line(substr($0, 8)); state = "usage"; next
    }
    state == "usage" && /^ / { sub(/^ +/, "    "); line($0); next }
    state == "usage" { print ".fi"; state = "text" }
    /^$/ { print ".PP"; state = "text"; next }
    /^exit status: / { heading("exit status"); line(substr($0, 14)); next }
    /^[a-z][a-z ]*:$/ { heading(substr($0, 1, length($0) - 1)); next }
    /^  [^ ]/ {
      t = substr($0, 3); d = ""
      if (match(t, /   *[^ ]/)) { d = substr(t, RSTART); sub(/^ +/, "", d); t = substr(t, 1, RSTART - 1) }
      print ".TP"; print "\\fB" esc(t) "\\fR"; print ".br"
      if (d != "") line(d)
      state = "entry"; next
    }
    state == "entry" && /^   / { sub(/^ +/, ""); line($0); next }
    {
      if (H == ".SH" && !described) { print ".SH DESCRIPTION"; described = 1 }
      if (state == "entry") { print ".PP"; state = "text" }
      line($0)
    }
    END { if (state == "usage") print ".fi" }
  '
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  case $mode in
  simclrc)
    printf '.TH SIMCLRC 1 "" "simclrc %s" "User Commands"\n.nh\n' "$version"
    printf '.SH NAME\nsimclrc \\- compile a SimCLR model into a training binary\n'
    "$prog" --help | help2roff .SH
    printf '.SH FILES\n.TP\n\\fIPREFIX\\fR/share/simclrc/models\nshipped models and the schema\n'
    printf '.TP\n\\fIPREFIX\\fR/lib/simclrc\nruntime libraries linked into training binaries\n'
    printf '.SH SEE ALSO\n\\fBsimclrc\\-binary\\fR(1)\n'
    ;;
  binary)
    # Run through a link named MODEL so that the pages say MODEL, not the
    # name of the binary they were made from.
    ln -s "$(cd "$(dirname "$prog")" && pwd)/$(basename "$prog")" "$tmp/MODEL"
    model=$("$prog" --version | sed -n 's/.*model \([^,]*\),.*/\1/p')
    printf '.TH SIMCLRC\\-BINARY 1 "" "simclrc %s" "User Commands"\n.nh\n' "$version"
    printf '.SH NAME\nsimclrc\\-binary \\- the training binary that simclrc generates for a model\n'
    "$tmp/MODEL" --help | help2roff .SH
    printf '.SH DEFAULTS\nMODEL stands for the binary'"'"'s name (by default the model'"'"'s). Defaults\n'
    printf 'quoted below come from the model this page was made from (%s) and the\nmachine it was built on; run \\fIMODEL SUBCOMMAND\\fR \\-\\-help for the values of yours.\n' "$model"
    subs=$("$tmp/MODEL" --help | awk '/^subcommands:$/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }')
    for sub in $subs; do
      printf '.SH "SUBCOMMAND %s"\n' "$(echo "$sub" | sed 's/-/\\-/g')"
      "$tmp/MODEL" "$sub" --help | help2roff .SS
    done
    printf '.SH SEE ALSO\n\\fBsimclrc\\fR(1)\n'
    ;;
  *) echo "usage: help2man.sh simclrc|binary PROGRAM OUT.1" >&2; exit 2 ;;
  esac
} >"$tmp/page"
mv "$tmp/page" "$out"
