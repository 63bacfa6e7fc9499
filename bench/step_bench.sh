#!/bin/sh
# The benchmark of issue 7: simclrc's training binaries next to PyTorch on
# this machine, in one run, written to bench/RESULTS.md.
#
#   bench/step_bench.sh [BUILD_DIR]        (default: ./build)
#
# For every model and batch of CONFIGS: compile with `simclrc --batch B`,
# then ROUNDS rounds alternating the binary's `bench-step` and
# torch_step_bench.py (forward + NT-Xent + backward; PyTorch also applies an
# SGD update, ~1% at these sizes), same batch, THREADS threads each;
# medians of views/s and of peak RSS, and their ratios. Also, in the same
# run: OpenBLAS's sgemm rate (BUILD_DIR/bench/sc_sgemm_rate) against which
# each step's GFLOP/s is read, the activation arena of resnet18-stl10
# (`simclrc --emit=memplan`) against the sum of its buffers, and one
# `bench-step --profile` of PROFILE whose top 10 kernels go into the
# results. Then the targets of issue 7, each met or not.
#
# Environment: ROUNDS (3), STEPS per run (3, after one warm-up step),
# THREADS (2), CONFIGS ("resnet-small:32 resnet18-cifar:32
# resnet18-stl10:32 resnet18-stl10:64"), PROFILE (resnet18-stl10:32),
# OUT (bench/RESULTS.md), FLAGS (extra simclrc options for the binaries
# compared, e.g. FLAGS=--tune; none by default), SIMCLRC (BUILD_DIR/compiler/simclrc), SGEMM
# (BUILD_DIR/bench/sc_sgemm_rate), PYTHON (/usr/bin/python3, which has
# torch). The defaults take 5 to 10 minutes on 2 cores (most of it
# PyTorch's side).
#
# The runs alternate (simclrc, PyTorch, simclrc, ...) so that drifting load
# on a shared machine hits both sides alike. Every OPENBLAS_* variable is
# unset for all runs: tuned values would favour one side. It is not a timed
# test: run it on an otherwise idle machine.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-build}
simclrc=${SIMCLRC:-$build/compiler/simclrc}
sgemm=${SGEMM:-$build/bench/sc_sgemm_rate}
python=${PYTHON:-/usr/bin/python3}
steps=${STEPS:-3}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
flags=${FLAGS:-}
configs=${CONFIGS:-"resnet-small:32 resnet18-cifar:32 resnet18-stl10:32 resnet18-stl10:64"}
profile=${PROFILE:-resnet18-stl10:32}
out=${OUT:-$here/RESULTS.md}

die() {
    echo "step_bench.sh: error: $*" >&2
    exit 1
}
for tool in "$simclrc" "$sgemm"; do
    [ -x "$tool" ] || die "$tool is not built (give the build directory; cmake --build it)"
done
for n in "$steps" "$rounds" "$threads"; do
    case $n in '' | *[!0-9]* | 0*) die "STEPS, ROUNDS and THREADS must be positive integers" ;; esac
done

# Every OPENBLAS_* variable (ours and the OpenBLAS under PyTorch read them).
openblas_found=$(env | grep '^OPENBLAS_' | sort | tr '\n' ' ' || true)
for v in $(env | sed -n 's/^\(OPENBLAS_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/step_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
ncpu=$(nproc)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)
echo "cpu: $cpu, $ncpu CPUs; load average $load0"
echo "OPENBLAS_* unset for both sides (found: $openblas_found)"
echo "$rounds rounds, $steps steps per run after one warm-up step, $threads threads"

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (!NR) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The number before WORD on the first line of FILE that has it.
before() {
    awk -v w="$1" '{ for (i = 2; i <= NF; i++) if ($i == w) { print $(i - 1); exit } }' "$2"
}
# The number of "peak RSS X MB" in FILE.
rss() {
    awk '$1 == "peak" && $2 == "RSS" { print $3; exit }' "$1"
}
# a / b with 4 decimals.
div() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "" }'
}
fmt() {
    awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'
}
need() {
    [ -n "$1" ] || die "could not read $2 from $3:
$(cat "$3")"
}

# ---- OpenBLAS's sgemm rate ----
"$sgemm" --threads "$threads" > "$tmp/sgemm.txt"
cat "$tmp/sgemm.txt"
sgemm_rate=$(awk '$1 == "sgemm" && $2 == "rate" { print $3; exit }' "$tmp/sgemm.txt")
need "$sgemm_rate" "the sgemm rate" "$tmp/sgemm.txt"
openblas_config=$(head -n 1 "$tmp/sgemm.txt")

# ---- the activation arena of resnet18-stl10 ----
"$simclrc" --emit=memplan "$src/models/resnet18-stl10.xml" > "$tmp/memplan.txt"
arena_line=$(grep -m1 '^arena peak' "$tmp/memplan.txt" || true)
arena_peak=$(echo "$arena_line" | sed -n 's/^arena peak \([0-9][0-9]*\) bytes.*/\1/p')
arena_sum=$(echo "$arena_line" | sed -n 's/.*added up \([0-9][0-9]*\) bytes.*/\1/p')
need "$arena_peak" "the arena peak" "$tmp/memplan.txt"
need "$arena_sum" "the sum of the arena buffers" "$tmp/memplan.txt"
arena_frac=$(div "$arena_peak" "$arena_sum")
echo "resnet18-stl10 arena: $arena_line"

# ---- the models ----
ours_threads=""
# results.txt: model batch ours torch ratio rss_ours rss_torch rss_ratio gflops frac compile_s
: > "$tmp/results.txt"
: > "$tmp/rounds.txt"
for cfg in $configs; do
    m=${cfg%%:*}
    b=${cfg#*:}
    case $cfg in *:*) ;; *) die "CONFIGS entries are MODEL:BATCH, not '$cfg'" ;; esac
    spec=$src/models/$m.xml
    [ -f "$spec" ] || die "no model $spec"
    bin=$tmp/$m-b$b
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # FLAGS is a list of options
    "$simclrc" $flags --batch "$b" -o "$bin" "$spec"
    t1=$(date +%s.%N)
    compile_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    echo "== $m batch $b: compiled in $compile_s s"
    : > "$tmp/c.txt"; : > "$tmp/cg.txt"; : > "$tmp/cr.txt"; : > "$tmp/t.txt"; : > "$tmp/tr.txt"
    r=1
    while [ "$r" -le "$rounds" ]; do
        "$bin" bench-step --steps "$steps" --threads "$threads" > "$tmp/ours.txt"
        "$python" "$here/torch_step_bench.py" "$spec" --batch "$b" --steps "$steps" --threads "$threads" > "$tmp/torch.txt"
        c=$(before images/s "$tmp/ours.txt"); need "$c" "views/s" "$tmp/ours.txt"
        cg=$(before GFLOP/s "$tmp/ours.txt"); need "$cg" "GFLOP/s" "$tmp/ours.txt"
        cr=$(rss "$tmp/ours.txt"); need "$cr" "peak RSS" "$tmp/ours.txt"
        t=$(before images/s "$tmp/torch.txt"); need "$t" "views/s" "$tmp/torch.txt"
        tr=$(rss "$tmp/torch.txt"); need "$tr" "peak RSS" "$tmp/torch.txt"
        [ -n "$ours_threads" ] || ours_threads=$(sed -n 's/.*steps, \(.*threads.*\)$/\1/p' "$tmp/ours.txt" | head -n 1)
        echo "  round $r: simclrc $c views/s $cg GFLOP/s $cr MB, PyTorch $t views/s $tr MB"
        echo "| $m | $b | $r | $c | $cg | $cr | $t | $tr |" >> "$tmp/rounds.txt"
        echo "$c" >> "$tmp/c.txt"; echo "$cg" >> "$tmp/cg.txt"; echo "$cr" >> "$tmp/cr.txt"
        echo "$t" >> "$tmp/t.txt"; echo "$tr" >> "$tmp/tr.txt"
        r=$((r + 1))
    done
    mc=$(median < "$tmp/c.txt"); mcg=$(median < "$tmp/cg.txt"); mcr=$(median < "$tmp/cr.txt")
    mt=$(median < "$tmp/t.txt"); mtr=$(median < "$tmp/tr.txt")
    echo "$m $b $mc $mt $(div "$mc" "$mt") $mcr $mtr $(div "$mcr" "$mtr") $mcg $(div "$mcg" "$sgemm_rate") $compile_s" >> "$tmp/results.txt"
done

# ---- one profiled run ----
pm=${profile%%:*}
pb=${profile#*:}
pbin=$tmp/$pm-b$pb
profile_cmd="$pm-b$pb bench-step --profile --steps $steps --threads $threads"
if [ -n "$profile" ]; then
    # shellcheck disable=SC2086
    [ -x "$pbin" ] || "$simclrc" $flags --batch "$pb" -o "$pbin" "$src/models/$pm.xml"
    echo "== profile: $profile_cmd"
    if "$pbin" bench-step --profile --steps "$steps" --threads "$threads" > "$tmp/profile.txt" 2>&1; then
        # The summary line, the table's header and its first 10 rows, the per-op table.
        awk '/^per-kernel profile:/ || /nodes never ran/ || /^warning:/ { print; next }
             /^per op:/ { ops = 1; rows = 0; print "" }
             ops && NF && ++nop <= 12 { print; next }
             ops && NF { more++ }
             END { if (more) printf "(%d more ops)\n", more }
             /^ *rank  / { print ""; rows = 11 }
             rows > 0 && NF { print; rows--; next }' "$tmp/profile.txt" > "$tmp/profile_top.txt"
    else
        { echo "(the profiled run failed:)"; cat "$tmp/profile.txt"; } > "$tmp/profile_top.txt"
    fi
    cat "$tmp/profile_top.txt"
fi

load1=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - t_start))

# ---- bench/RESULTS.md ----
# field MODEL BATCH COLUMN: a column of results.txt (empty when not run).
field() {
    awk -v m="$1" -v b="$2" -v k="$3" '$1 == m && $2 == b { print $k; exit }' "$tmp/results.txt"
}
# target DESCRIPTION VALUE OP THRESHOLD SHOWN: one row of the targets table.
target() {
    if [ -z "$2" ]; then
        echo "| $1 | not measured (not in CONFIGS) | - |"
        return
    fi
    verdict=$(awk -v v="$2" -v op="$3" -v t="$4" \
        'BEGIN { print ((op == ">=" && v >= t) || (op == "<=" && v <= t)) ? "met" : "**not met**" }')
    echo "| $1 | $5 | $verdict |"
}
x2() { [ -z "$1" ] || fmt "$1" "%.2fx"; }
pct() { [ -z "$1" ] || awk -v v="$1" 'BEGIN { printf "%.1f%%", 100 * v }'; }

torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "?")
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "?")
if ! git -C "$src" diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi

{
    echo "# Issue 7 benchmark: training step, simclrc vs PyTorch"
    echo
    echo "Written by \`bench/step_bench.sh\`; do not edit by hand, re-run it."
    echo
    echo "- date: $date_utc; the run took $elapsed s"
    echo "- source: $commit; $("$simclrc" --version); binaries compiled with \`simclrc ${flags:+$flags }--batch B\`"
    echo "- machine: $cpu, $ncpu CPUs (nproc); load average $load0 at the start, $load1 at the end"
    echo "- OpenBLAS: $openblas_config"
    echo "- PyTorch: $torch_version (\`$python\`), \`torch.set_num_threads($threads)\`"
    if [ -n "$openblas_found" ]; then
        # shellcheck disable=SC2016 # the backquotes are Markdown's
        echo "- environment as found: $(echo "$openblas_found" | sed 's/[^ ][^ ]*/`&`/g')"
    else
        echo "- environment as found: no OPENBLAS_* variables"
    fi
    echo "- environment as used: every OPENBLAS_* variable unset, for both sides"
    busy=$(echo "$load0 $ncpu" | awk '{ print ($1 > 0.25 * $4) ? 1 : 0 }')
    if [ "$busy" = 1 ]; then
        echo "- **the machine was not idle** (load average $load0 on $ncpu CPUs at the start): expect noisy numbers"
    fi
    echo "- simclrc: $ours_threads"
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "ROUNDS=$rounds STEPS=$steps THREADS=$threads bench/step_bench.sh $build"
    echo "# for each MODEL:BATCH of: $configs"
    echo "simclrc --batch BATCH -o BIN models/MODEL.xml"
    echo "# then $rounds rounds of, alternating:"
    echo "BIN bench-step --steps $steps --threads $threads"
    echo "/usr/bin/python3 bench/torch_step_bench.py models/MODEL.xml --batch BATCH --steps $steps --threads $threads"
    echo "# once:"
    echo "sc_sgemm_rate --threads $threads"
    echo "simclrc --emit=memplan models/resnet18-stl10.xml"
    echo "$profile_cmd"
    echo '```'
    echo
    echo "## Training step"
    echo
    echo "Medians over $rounds rounds of $steps steps (after one warm-up step); views/s = 2 x batch / step time."
    echo "Peak RSS is the whole process's (PyTorch: the Python process with torch loaded); MB = 10^6 bytes."
    echo
    echo "| model | batch | ours views/s | PyTorch views/s | ratio | ours RSS MB | PyTorch RSS MB | ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    while read -r m b c t ratio cr tr rr g f cs; do
        echo "| $m | $b | $c | $t | $(x2 "$ratio") | $cr | $tr | $(x2 "$rr") |"
    done < "$tmp/results.txt"
    echo
    echo "Step GFLOP/s (the model's FLOPs per step / step time) against OpenBLAS's sgemm rate,"
    echo "$sgemm_rate GFLOP/s ($threads threads, median over square sizes 1024, 1536, 2048):"
    echo
    echo "| model | batch | ours GFLOP/s | of sgemm rate | compile s |"
    echo "|---|---:|---:|---:|---:|"
    while read -r m b c t ratio cr tr rr g f cs; do
        echo "| $m | $b | $g | $(pct "$f") | $cs |"
    done < "$tmp/results.txt"
    echo
    echo "Activation arena of resnet18-stl10 (at the model's own batch): peak $arena_peak bytes,"
    echo "all arena buffers added up $arena_sum bytes: $(pct "$arena_frac")."
    echo
    echo "## Targets of issue 7"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    for b in 32 64; do
        v=$(field resnet18-stl10 "$b" 5)
        target "resnet18-stl10 b$b: views/s >= 1.5x PyTorch" "$v" ">=" 1.5 "$(x2 "$v")"
        v=$(field resnet18-stl10 "$b" 8)
        target "resnet18-stl10 b$b: peak RSS <= 0.5x PyTorch" "$v" "<=" 0.5 "$(x2 "$v")"
    done
    v=$(field resnet18-cifar 32 5)
    target "resnet18-cifar b32: views/s >= 1.2x PyTorch" "$v" ">=" 1.2 "$(x2 "$v")"
    v=$(field resnet-small 32 5)
    target "resnet-small b32: views/s >= 2x PyTorch" "$v" ">=" 2 "$(x2 "$v")"
    resnet18=$(awk '$1 ~ /^resnet18-/ { print $1 ":" $2 }' "$tmp/results.txt")
    [ -n "$resnet18" ] || target "ResNet-18 step >= 60% of the sgemm rate" "" ">=" 0.6 ""
    for cfg in $resnet18; do
        v=$(field "${cfg%%:*}" "${cfg#*:}" 10)
        target "ResNet-18 step >= 60% of the sgemm rate (${cfg%%:*} b${cfg#*:})" "$v" ">=" 0.6 "$(pct "$v")"
    done
    target "resnet18-stl10 arena <= 60% of the sum of activation buffers" "$arena_frac" "<=" 0.6 "$(pct "$arena_frac")"
    echo
    echo "## Top 10 kernels: $profile_cmd"
    echo
    echo '```'
    if [ -n "$profile" ]; then cat "$tmp/profile_top.txt"; else echo "(PROFILE empty: no profiled run)"; fi
    echo '```'
    echo
    echo "## Every round"
    echo
    echo "| model | batch | round | ours views/s | ours GFLOP/s | ours RSS MB | PyTorch views/s | PyTorch RSS MB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    cat "$tmp/rounds.txt"
} > "$tmp/RESULTS.md"
cp "$tmp/RESULTS.md" "$out"

echo
echo "medians ($threads threads; sgemm rate $sgemm_rate GFLOP/s):"
printf '%-16s %5s %10s %10s %7s %9s %9s %7s %8s\n' model batch ours PyTorch ratio "RSS MB" "PT RSS" ratio "of sgemm"
while read -r m b c t ratio cr tr rr g f cs; do
    printf '%-16s %5s %10s %10s %7s %9s %9s %7s %8s\n' "$m" "$b" "$c" "$t" "$(x2 "$ratio")" "$cr" "$tr" \
        "$(x2 "$rr")" "$(pct "$f")"
done < "$tmp/results.txt"
echo "arena: $(pct "$arena_frac") of the sum of the buffers"
echo "wrote $out ($elapsed s)"
