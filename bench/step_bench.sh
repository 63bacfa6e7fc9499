#!/bin/sh
# Training-step throughput of simclrc's binaries next to PyTorch's for the
# same model and batch on this machine: forward + NT-Xent + backward (the
# PyTorch side also applies an SGD update, which costs ~1% at these sizes).
#
#   bench/step_bench.sh [BUILD_DIR]        (default: ./build)
#
# Environment: BATCH (32), STEPS per run (3), ROUNDS of alternating runs
# (5), THREADS (2), MODELS (resnet-small resnet18-cifar resnet18-stl10),
# SIMCLRC (BUILD_DIR/compiler/simclrc), PYTHON (/usr/bin/python3, which
# has torch). Prints every run, then medians and the ratio.
#
# The runs alternate (simclrc, PyTorch, simclrc, ...) so that drifting load
# on a shared machine hits both sides alike. It is not a timed test: run it
# on an otherwise idle machine.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-build}
simclrc=${SIMCLRC:-$build/compiler/simclrc}
python=${PYTHON:-/usr/bin/python3}
batch=${BATCH:-32}
steps=${STEPS:-3}
rounds=${ROUNDS:-5}
threads=${THREADS:-2}
models=${MODELS:-"resnet-small resnet18-cifar resnet18-stl10"}

if [ ! -x "$simclrc" ]; then
    echo "step_bench.sh: error: no simclrc at $simclrc (give the build directory)" >&2
    exit 2
fi
# OpenBLAS (ours and the one under PyTorch) reads these; tuned values would
# favour one side, so both run with OpenBLAS's own detection.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
echo "note: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for both sides"
echo "batch $batch, $steps steps per run after one warm-up step, $rounds rounds, $threads threads"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/step_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The number before "images/s" in a run's output.
rate() {
    awk '{ for (i = 2; i <= NF; i++) if ($i == "images/s") print $(i - 1) }'
}

summary=""
for m in $models; do
    spec=$src/models/$m.xml
    t0=$(date +%s.%N)
    "$simclrc" --batch "$batch" -o "$tmp/$m" "$spec"
    t1=$(date +%s.%N)
    echo "== $m: compiled in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    : > "$tmp/c.txt"
    : > "$tmp/t.txt"
    r=1
    while [ "$r" -le "$rounds" ]; do
        c=$("$tmp/$m" bench-step --steps "$steps" --threads "$threads" | rate)
        t=$("$python" "$here/torch_step_bench.py" "$spec" --batch "$batch" --steps "$steps" --threads "$threads" | rate)
        echo "  round $r: simclrc $c images/s, PyTorch $t images/s"
        echo "$c" >> "$tmp/c.txt"
        echo "$t" >> "$tmp/t.txt"
        r=$((r + 1))
    done
    mc=$(median < "$tmp/c.txt")
    mt=$(median < "$tmp/t.txt")
    ratio=$(awk -v a="$mc" -v b="$mt" 'BEGIN { printf "%.2f", a / b }')
    summary="$summary$(printf '%-18s %12s %12s %8sx' "$m" "$mc" "$mt" "$ratio")
"
done
echo
echo "medians (images/s = views per second, batch $batch, $threads threads):"
printf '%-18s %12s %12s %9s\n' model simclrc PyTorch ratio
printf '%s' "$summary"
