#!/bin/sh
# Augmented images per second per core for the reference recipe at 96x96
# (models/resnet18-stl10.xml's <augment>): simclrc's runtime (C, one thread)
# next to torchvision 0.14 (/usr/bin/python3, one thread) on the same images
# in the same run: tensor pipeline and the usual PIL pipeline, several runs
# each, medians, and the ratio against the faster torchvision variant.
# Decoding from the STL-10 layout is included on both sides; the images are
# Fashion-MNIST converted by fmnist2stl10.
#
# Usage: bench/augment_bench.sh [BUILD_DIR]   (default: build)
# Environment: RUNS (5), C_VIEWS (3000), PY_VIEWS (400) views per run.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
runs=${RUNS:-5}
c_views=${C_VIEWS:-3000}
py_views=${PY_VIEWS:-400}
python=/usr/bin/python3

for tool in "$build/tools/fmnist2stl10" "$build/tools/augment_bench"; do
    [ -x "$tool" ] || { echo "augment_bench.sh: $tool: error: not built (cmake --build $build)" >&2; exit 1; }
done

# OpenBLAS tuning variables change nothing here but are unset for both
# sides so neither runs under a different library configuration.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

data=$(mktemp -d "${TMPDIR:-/tmp}/sc_augment_bench.XXXXXX")
trap 'rm -rf "$data"' EXIT INT TERM
"$build/tools/fmnist2stl10" --limit 1000 "$data" >/dev/null

echo "reference recipe at 96x96, one thread each, $runs runs;" \
    "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for both sides"
echo "--- simclrc runtime ($c_views views per run)"
c_out=$("$build/tools/augment_bench" "$data" "$c_views" "$runs")
echo "$c_out"
echo "--- torchvision, tensor pipeline ($py_views views per run)"
t_out=$("$python" "$here/augment_bench.py" "$data" "$py_views" "$runs" tensor 2>/dev/null)
echo "$t_out"
echo "--- torchvision, PIL pipeline ($py_views views per run)"
p_out=$("$python" "$here/augment_bench.py" "$data" "$py_views" "$runs" pil 2>/dev/null)
echo "$p_out"

median() { echo "$1" | sed -n 's/^median: \([0-9.]*\) images\/s.*/\1/p'; }
c=$(median "$c_out")
t=$(median "$t_out")
p=$(median "$p_out")
awk -v c="$c" -v t="$t" -v p="$p" 'BEGIN {
    best = t > p ? t : p
    printf "=== median images/s/core: simclrc %.1f, torchvision tensor %.1f, PIL %.1f\n", c, t, p
    printf "=== ratio simclrc / fastest torchvision: %.2fx (goal >= 3x)\n", c / best
}'
