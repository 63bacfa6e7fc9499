#!/bin/sh
# Downloads the real STL-10 binary archive, verifies its MD5 and extracts
# train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin,
# fold_indices.txt and class_names.txt into DIR.
#
# Usage: fetch-stl10.sh [--archive FILE] DIR
#   --archive FILE  use an already downloaded stl10_binary.tar.gz
# Exit status: 0 done, 1 download/verification/extraction failed, 2 bad usage.
set -eu

PROG=fetch-stl10.sh
URL=http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz
MD5=91f7769df0f17e558f3565bffb0c7dfb
FILES="train_X.bin train_y.bin test_X.bin test_y.bin unlabeled_X.bin fold_indices.txt class_names.txt"

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0"
}

archive=
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --archive) [ $# -ge 2 ] || { echo "$PROG: error: --archive needs a file" >&2; exit 2; }
        archive=$2; shift 2 ;;
    --archive=*) archive=${1#--archive=}; shift ;;
    -*) echo "$PROG: error: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "$PROG: error: expected one output directory" >&2; usage >&2; exit 2; }
dir=$1

mkdir -p "$dir" || { echo "$PROG: $dir: error: cannot create directory" >&2; exit 1; }
work=$(mktemp -d "$dir/.fetch-stl10.XXXXXX") ||
    { echo "$PROG: $dir: error: cannot create a work directory" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT INT TERM

if [ -z "$archive" ]; then
    archive=$work/stl10_binary.tar.gz
    echo "$PROG: downloading $URL (2.6 GB)" >&2
    if command -v curl >/dev/null 2>&1; then
        curl -fL --connect-timeout 20 --retry 2 -o "$archive" "$URL" ||
            { echo "$PROG: $URL: error: download failed (is the network reachable?)" >&2; exit 1; }
    elif command -v wget >/dev/null 2>&1; then
        wget -q --timeout=20 --tries=3 -O "$archive" "$URL" ||
            { echo "$PROG: $URL: error: download failed (is the network reachable?)" >&2; exit 1; }
    else
        echo "$PROG: error: neither curl nor wget is installed" >&2
        exit 1
    fi
fi
[ -r "$archive" ] || { echo "$PROG: $archive: error: cannot read archive" >&2; exit 1; }

sum=$(md5sum < "$archive" | cut -d' ' -f1)
if [ "$sum" != "$MD5" ]; then
    echo "$PROG: $archive: error: MD5 $sum does not match the published $MD5" >&2
    exit 1
fi

tar -xzf "$archive" -C "$work" ||
    { echo "$PROG: $archive: error: extraction failed" >&2; exit 1; }
for f in $FILES; do
    [ -f "$work/stl10_binary/$f" ] ||
        { echo "$PROG: $archive: error: stl10_binary/$f missing from the archive" >&2; exit 1; }
done
# Same file system, so each rename is atomic.
for f in $FILES; do
    mv -f "$work/stl10_binary/$f" "$dir/$f"
done
echo "$PROG: STL-10 is in $dir" >&2
