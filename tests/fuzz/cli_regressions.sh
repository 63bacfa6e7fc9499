#!/usr/bin/env bash
# The command-line cases of issue 15 against a build (release or
# sanitized): each bad input must end with exit status 1 and a message
# naming the file, with no crash and no sanitizer report.
#   cli_regressions.sh SIMCLRC SOURCE_DIR
set -uo pipefail
simclrc=$1
src=$2
corpus=$src/tests/fuzz/corpus
tmp=$(mktemp -d /tmp/sc_cli_regress.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect STATUS SUBSTRING CMD...: exit status and a line of stderr.
expect() {
  local want=$1 text=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" != "$want" ] || ! grep -qF -- "$text" "$tmp/err" ||
     grep -qE "Sanitizer|runtime error:" "$tmp/err"; then
    echo "FAIL: $* -> exit $got (want $want and '$text'):" >&2
    cat "$tmp/err" >&2
    fails=$((fails + 1))
  else
    echo "ok: exit $got: $(grep -F -- "$text" "$tmp/err" | head -1)"
  fi
}

# The compiler: too many augmentations, a 2 TiB arena (its exact size
# follows the convolutions' workspaces; the largest tensor does not).
expect 1 "regress-15-5-augmentations.xml:47: error: more than 32 augmentations" \
  "$simclrc" -o "$tmp/x" "$corpus/fuzz_spec/regress-15-5-augmentations.xml"
expect 1 "regress-15-5-huge-filters.xml:12: error: the training step's activation arena needs" \
  "$simclrc" -o "$tmp/x" "$corpus/fuzz_spec/regress-15-5-huge-filters.xml"
expect 1 "TiB, more than the limit of 64.0 GiB (its largest tensor, encoder.0, 488.3 GiB, comes from this layer)" \
  "$simclrc" -o "$tmp/x" "$corpus/fuzz_spec/regress-15-5-huge-filters.xml"

# A small binary of the input geometry 1x3x3 of the safetensors corpus.
cat >"$tmp/m.xml" <<'XML'
<simclr name="cli-regress" version="1">
  <input channels="1" height="3" width="3"/>
  <encoder>
    <conv filters="2" kernel="3" pad="1"/>
    <batchnorm/>
    <relu/>
    <global-avgpool/>
  </encoder>
  <head>
    <linear units="2"/>
  </head>
  <loss type="nt-xent" temperature="0.5"/>
  <train batch="2" epochs="1" optimizer="adam" lr="0.001"/>
</simclr>
XML
if ! "$simclrc" --threads=1 -O0 -o "$tmp/bin" "$tmp/m.xml"; then
  echo "FAIL: cannot compile the test model" >&2
  exit 1
fi
bin=$tmp/bin

# encode --input: a shape whose byte count wraps, a header cut in a number.
for f in regress-15-1-shape-overflow regress-15-2-header-ends-in-number regress-15-5-overlap regress-15-5-hole; do
  expect 1 "$f.safetensors" "$bin" encode --random-init --input "$corpus/fuzz_safetensors/$f.safetensors" -o "$tmp/f.safetensors"
done
"$bin" encode --random-init --input "$corpus/fuzz_safetensors/seed-encode-input.safetensors" -o "$tmp/f.safetensors" ||
  { echo "FAIL: encode of a good input" >&2; fails=$((fails + 1)); }

# A dataset of two 96x96 images without fold_indices.txt: check-data
# reports the folds absent; train writes a checkpoint at epoch 0.
data=$tmp/data
mkdir "$data"
head -c $((2 * 27648)) /dev/zero >"$data/train_X.bin"
printf '\001\002' >"$data/train_y.bin"
cp "$data/train_X.bin" "$data/test_X.bin"
cp "$data/train_y.bin" "$data/test_y.bin"
cp "$data/train_X.bin" "$data/unlabeled_X.bin"
if "$bin" check-data --data "$data" >"$tmp/out" 2>"$tmp/err" && grep -q "absent" "$tmp/out"; then
  echo "ok: check-data without folds: $(grep absent "$tmp/out")"
else
  echo "FAIL: check-data without fold_indices.txt:" >&2
  cat "$tmp/out" "$tmp/err" >&2
  fails=$((fails + 1))
fi
expect 1 "fold_indices.txt" "$bin" train --data "$data" --split fold0 --out "$tmp/runf" --epochs 1

"$bin" train --data "$data" --split train --out "$tmp/run" --epochs 0 >/dev/null 2>"$tmp/err" ||
  { echo "FAIL: train --epochs 0:" >&2; cat "$tmp/err" >&2; exit 1; }
ckpt=$tmp/run/checkpoint.safetensors
cp "$ckpt" "$tmp/good.safetensors"
# set_meta KEY=VALUE... [-KEY]: rewrites the checkpoint's metadata.
set_meta() {
  /usr/bin/python3 - "$tmp/good.safetensors" "$ckpt" "$@" <<'PY'
import json, struct, sys
src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
for e in edits:
    if e.startswith('-'):
        h['__metadata__'].pop(e[1:], None)
    else:
        k, v = e.split('=', 1)
        h['__metadata__'][k] = v
t = json.dumps(h).encode()
open(dst, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
PY
}
set_meta epoch=4611686018427387904
expect 1 "checkpoint.safetensors: error: malformed checkpoint metadata" "$bin" train --data "$data" --out "$tmp/run" --resume
set_meta step=9223372036854775807 train/steps_per_epoch=4611686018427387904 -train/epoch_images
expect 1 "checkpoint.safetensors: error:" "$bin" train --data "$data" --out "$tmp/run" --resume
set_meta step=1099511627776 epoch=1000000 train/steps_per_epoch=1099511627776 -train/epoch_images
expect 1 "checkpoint.safetensors: error:" "$bin" train --data "$data" --out "$tmp/run" --resume

[ "$fails" = 0 ] || { echo "$fails case(s) failed" >&2; exit 1; }
echo "all cases passed"
