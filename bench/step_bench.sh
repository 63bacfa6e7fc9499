#!/bin/sh
# The benchmark of issue 14, as a critic would run it: simclrc's training
# binaries next to PyTorch on this machine, in one run, against the FMA
# peak measured in the same run; written to bench/RESULTS.md.
#
#   bench/step_bench.sh [BUILD_DIR]        (default: ./build)
#
# Needs libjemalloc2 (bench/install-deps.sh) and /usr/bin/python3 with torch.
#
# In one run:
# - the peak: sc_fma_peak (an inline loop of independent vfmadd231ps on zmm,
#   or ymm without AVX-512F; 1 thread and THREADS threads), and OpenBLAS's
#   sgemm 2048^2 (sc_sgemm_rate) with the CPU's best core
#   (OPENBLAS_CORETYPE=`sc_sgemm_rate --best-core`) and as found;
# - for every MODEL:BATCH, ROUNDS rounds, each running every variant once,
#   ours and PyTorch's interleaved, the order reversed every other round:
#     ours         the binary (`simclrc --batch B`), environment as found
#     ours tuned   the same binary with every variable of PyTorch tuned
#     ours openblas  `simclrc --gemm=openblas`, tuned (when simclrc has it)
#     PT           PyTorch as a user runs it, environment as found
#     PT tuned     channels_last, LD_PRELOAD of jemalloc, OPENBLAS_CORETYPE
#                  set to the best core (that also reaches ours tuned)
#     PT bf16      tuned + torch.autocast("cpu", dtype=torch.bfloat16)
#   every run STEPS timed steps after one warm-up step; a step is forward,
#   NT-Xent, backward and the SGD momentum update on both sides
#   (bench-step and torch_step_bench.py: lr 0.01, momentum 0.9, weight
#   decay 1e-4); medians of views/s, the median and min-max of the
#   per-round ratios, the step's fraction of the FMA peak, whole-process
#   peak RSS and its rise above the resident size before the model's
#   tensors were allocated;
# - one `bench-step --profile` of PROFILE, its top kernels against the peak;
# - issue 14's targets, each met or not.
#
# Environment: ROUNDS (5), STEPS (10), THREADS (nproc), MODELS
# ("resnet18-stl10:32 resnet18-stl10:64 resnet18-cifar:32 resnet-small:32"),
# PROFILE (resnet18-stl10:32; empty: none), OUT (bench/RESULTS.md), FLAGS
# (extra simclrc options for every binary), FORCE (1: run even when the
# 1-minute load average exceeds 0.5 per CPU, with a loud warning in the
# table), JEMALLOC (/usr/lib/x86_64-linux-gnu/libjemalloc.so.2), SIMCLRC,
# SGEMM, FMA (the tools in BUILD_DIR), PYTHON (/usr/bin/python3). The
# defaults take about 40 minutes on 2 cores (most of it PyTorch's side).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-build}
simclrc=${SIMCLRC:-$build/compiler/simclrc}
sgemm=${SGEMM:-$build/bench/sc_sgemm_rate}
fma=${FMA:-$build/bench/sc_fma_peak}
python=${PYTHON:-/usr/bin/python3}
jemalloc=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
steps=${STEPS:-10}
rounds=${ROUNDS:-5}
threads=${THREADS:-$(nproc)}
flags=${FLAGS:-}
models=${MODELS:-${CONFIGS:-"resnet18-stl10:32 resnet18-stl10:64 resnet18-cifar:32 resnet-small:32"}}
profile=${PROFILE-resnet18-stl10:32}
out=${OUT:-$here/RESULTS.md}
force=${FORCE:-0}

die() {
    echo "step_bench.sh: error: $*" >&2
    exit 1
}
for tool in "$simclrc" "$sgemm" "$fma"; do
    [ -x "$tool" ] || die "$tool is not built (give the build directory; cmake --build it)"
done
for n in "$steps" "$rounds" "$threads"; do
    case $n in '' | *[!0-9]* | 0*) die "STEPS, ROUNDS and THREADS must be positive integers" ;; esac
done
[ -r "$jemalloc" ] || die "no $jemalloc: install libjemalloc2 (bench/install-deps.sh) or set JEMALLOC"
"$python" -c 'import torch' 2> /dev/null || die "$python cannot import torch (python3-torch)"
for cfg in $models; do
    case $cfg in *:*) ;; *) die "MODELS entries are MODEL:BATCH, not '$cfg'" ;; esac
    [ -f "$src/models/${cfg%%:*}.xml" ] || die "no model $src/models/${cfg%%:*}.xml"
done

# ---- is the machine quiet? ----
ncpu=$(nproc)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(echo "$load0 $ncpu" | awk '{ print ($1 > 0.5 * $4) ? 1 : 0 }')
if [ "$busy" = 1 ]; then
    [ "$force" = 1 ] || die "the machine is busy (load average $load0 on $ncpu CPUs, over 0.5 per CPU): run it on a quiet machine, or FORCE=1 to run anyway with a warning in the table"
    echo "step_bench.sh: WARNING: busy machine (load average $load0 on $ncpu CPUs); FORCE=1 runs anyway" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/step_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)

lscpu_field() {
    LC_ALL=C lscpu | sed -n "s/^$1:[[:space:]]*//p" | head -n 1
}
cpu_name=$(lscpu_field 'Model name')
cpu_family=$(lscpu_field 'CPU family')
cpu_model=$(lscpu_field 'Model')
best=$("$sgemm" --best-core)
[ -n "$best" ] || die "this CPU has no AVX2 + FMA: no OpenBLAS core to tune for"
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
env_found=$(env | grep '^OPENBLAS_\|^LD_PRELOAD=\|^MALLOC_CONF=' | sort | tr '\n' ' ' || true)
# The tuned environment: PyTorch's tuning, given to both sides.
preload=$jemalloc${LD_PRELOAD:+ $LD_PRELOAD}
tuned() {
    env LD_PRELOAD="$preload" OPENBLAS_CORETYPE="$best" "$@"
}
echo "cpu: $cpu_name (family $cpu_family, model $cpu_model), $ncpu CPUs; load average $load0"
echo "environment as found: ${env_found:-(no OPENBLAS_*, LD_PRELOAD)}; tuned: LD_PRELOAD=$preload OPENBLAS_CORETYPE=$best"
echo "$rounds rounds, $steps steps per run after one warm-up step, $threads threads"

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (!NR) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# "min-max" of a column of numbers, 2 decimals.
spread() {
    sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.2f-%.2f", lo, hi }'
}
# The number before WORD on the first line of FILE that has it.
before() {
    awk -v w="$1" '{ for (i = 2; i <= NF; i++) if ($i == w) { print $(i - 1); exit } }' "$2"
}
# The number after the words "A B" on the first line of FILE that has them.
after() {
    awk -v a="$1" -v b="$2" '{ for (i = 1; i + 2 <= NF; i++) if ($i == a && $(i + 1) == b) { print $(i + 2); exit } }' "$3"
}
div() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.4f", a / b; else print "" }'
}
x2() { [ -z "$1" ] || awk -v v="$1" 'BEGIN { printf "%.2fx", v }'; }
pct() { [ -z "$1" ] || awk -v v="$1" 'BEGIN { printf "%.1f%%", 100 * v }'; }
need() {
    [ -n "$1" ] || die "could not read $2 from $3:
$(cat "$3")"
}

# ---- the peak ----
"$fma" --threads "$threads" > "$tmp/fma.txt"
cat "$tmp/fma.txt"
fma_peak=$(after fma peak "$tmp/fma.txt"); need "$fma_peak" "the FMA peak" "$tmp/fma.txt"
fma_one=$(after "1" thread "$tmp/fma.txt"); need "$fma_one" "the 1-thread FMA peak" "$tmp/fma.txt"
fma_isa=$(sed -n 's/.*GFLOP\/s (\([a-z]*\),.*/\1/p' "$tmp/fma.txt")
OPENBLAS_CORETYPE=$best "$sgemm" --threads "$threads" 2048 > "$tmp/sgemm_best.txt"
"$sgemm" --threads "$threads" 2048 > "$tmp/sgemm_found.txt"
cat "$tmp/sgemm_best.txt" "$tmp/sgemm_found.txt"
sgemm_best=$(after sgemm rate "$tmp/sgemm_best.txt"); need "$sgemm_best" "the sgemm rate" "$tmp/sgemm_best.txt"
sgemm_found=$(after sgemm rate "$tmp/sgemm_found.txt"); need "$sgemm_found" "the sgemm rate" "$tmp/sgemm_found.txt"
core() { sed -n '1s/.*(core \([^)]*\)).*/\1/p' "$1"; }
core_best=$(core "$tmp/sgemm_best.txt")
core_found=$(core "$tmp/sgemm_found.txt")
openblas_version=$(sed -n '1s/^\(OpenBLAS [0-9.]*\).*/\1/p' "$tmp/sgemm_found.txt")

# ---- the models ----
has_gemm=0
"$simclrc" --help 2>&1 | grep -q -- --gemm && has_gemm=1
variants="ours ours_tuned pt pt_tuned pt_bf16"
[ "$has_gemm" = 1 ] && variants="ours ours_tuned ours_openblas pt pt_tuned pt_bf16"
# The variants in run order: ours and PyTorch's interleaved.
order="ours pt ours_tuned pt_tuned"
[ "$has_gemm" = 1 ] && order="$order ours_openblas"
order="$order pt_bf16"
reversed=$(echo "$order" | tr ' ' '\n' | awk '{ v[NR] = $0 } END { for (i = NR; i > 0; i--) printf "%s%s", v[i], (i > 1 ? " " : "") }')
ours_line=""
compile_stl10=""
# runs.txt: model batch round variant views_per_s peak_mb rise_mb rise_above_step1_mb
: > "$tmp/runs.txt"
: > "$tmp/flops.txt"
for cfg in $models; do
    m=${cfg%%:*}
    b=${cfg#*:}
    spec=$src/models/$m.xml
    bin=$tmp/$m-b$b
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # FLAGS is a list of options
    "$simclrc" $flags --batch "$b" -o "$bin" "$spec"
    t1=$(date +%s.%N)
    cs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    [ "$m:$b" != resnet18-stl10:32 ] || compile_stl10=$cs
    echo "== $m batch $b: compiled in $cs s"
    if [ "$has_gemm" = 1 ]; then
        # shellcheck disable=SC2086
        "$simclrc" $flags --gemm=openblas --batch "$b" -o "$bin-openblas" "$spec"
    fi
    r=1
    while [ "$r" -le "$rounds" ]; do
        if [ $((r % 2)) = 1 ]; then runs=$order; else runs=$reversed; fi
        line="  round $r:"
        for v in $runs; do
            o=$tmp/$v.txt
            case $v in
            ours) "$bin" bench-step --steps "$steps" --threads "$threads" > "$o" ;;
            ours_tuned) tuned "$bin" bench-step --steps "$steps" --threads "$threads" > "$o" ;;
            ours_openblas) tuned "$bin-openblas" bench-step --steps "$steps" --threads "$threads" > "$o" ;;
            pt) "$python" "$here/torch_step_bench.py" "$spec" --batch "$b" --steps "$steps" --threads "$threads" > "$o" ;;
            pt_tuned) tuned "$python" "$here/torch_step_bench.py" "$spec" --batch "$b" --steps "$steps" \
                --threads "$threads" --channels-last > "$o" ;;
            pt_bf16) tuned "$python" "$here/torch_step_bench.py" "$spec" --batch "$b" --steps "$steps" \
                --threads "$threads" --channels-last --bf16 > "$o" ;;
            esac
            vs=$(before images/s "$o"); need "$vs" "views/s" "$o"
            pk=$(after peak RSS "$o"); need "$pk" "peak RSS" "$o"
            rise=$(sed -n "s/^RSS before the model's tensors .*peak rise above it \([0-9.]*\) MB.*/\1/p" "$o")
            need "$rise" "the memory rise" "$o"
            rise1=$(sed -n 's/^RSS before the first step .*peak rise above it \([0-9.]*\) MB.*/\1/p' "$o")
            need "$rise1" "the memory rise above the first step" "$o"
            echo "$m $b $r $v $vs $pk $rise $rise1" >> "$tmp/runs.txt"
            line="$line $v $vs"
            case $v in ours)
                [ -n "$ours_line" ] || ours_line=$(sed -n 's/.*steps, \(.*threads.*\)$/\1/p' "$o" | head -n 1)
                fl=$(sed -n 's/^FLOPs per step \([0-9][0-9]*\).*/\1/p' "$o"); need "$fl" "FLOPs per step" "$o"
                grep -q "^$m $b " "$tmp/flops.txt" || echo "$m $b $fl" >> "$tmp/flops.txt" ;;
            esac
        done
        echo "$line views/s"
        r=$((r + 1))
    done
done

# ---- one profiled run ----
pm=${profile%%:*}
pb=${profile#*:}
profile_cmd="(PROFILE empty: none)"
[ -z "$profile" ] || profile_cmd="$pm-b$pb bench-step --profile --steps $steps --threads $threads"
if [ -n "$profile" ]; then
    pbin=$tmp/$pm-b$pb
    # shellcheck disable=SC2086
    [ -x "$pbin" ] || "$simclrc" $flags --batch "$pb" -o "$pbin" "$src/models/$pm.xml"
    echo "== profile: $profile_cmd"
    if "$pbin" bench-step --profile --steps "$steps" --threads "$threads" > "$tmp/profile.txt" 2>&1; then
        # The summary, the table's header and first 10 rows with each
        # kernel's fraction of the FMA peak, then the per-op table.
        awk -v peak="$fma_peak" '
             /^per-kernel profile:/ || /nodes never ran/ || /^warning:/ { print; next }
             /^per op:/ { ops = 1; rows = 0; print ""; print; next }
             ops && NF && ++nop <= 13 { print; next }
             ops && NF { more++ }
             END { if (more) printf "(%d more ops)\n", more }
             /^ *rank  / { print ""; print $0 "  of peak"; rows = 10; next }
             rows > 0 && NF { printf "%s  %6.1f%%\n", $0, 100 * $(NF - 1) / peak; rows--; next }' \
            "$tmp/profile.txt" > "$tmp/profile_top.txt"
    else
        { echo "(the profiled run failed:)"; cat "$tmp/profile.txt"; } > "$tmp/profile_top.txt"
    fi
    cat "$tmp/profile_top.txt"
fi

load1=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - t_start))

# ---- the summary ----
# col MODEL BATCH VARIANT FIELD: the values of one variant over the rounds
# (FIELD 5 views/s, 6 peak RSS, 7 rise, 8 rise above the RSS before step 1).
col() {
    awk -v m="$1" -v b="$2" -v v="$3" -v k="$4" '$1 == m && $2 == b && $4 == v { print $k }' "$tmp/runs.txt"
}
# ratios MODEL BATCH A B FIELD: A / B in each round.
ratios() {
    awk -v m="$1" -v b="$2" -v a="$3" -v c="$4" -v k="$5" '
        $1 == m && $2 == b && $4 == a { x[$3] = $k }
        $1 == m && $2 == b && $4 == c { y[$3] = $k }
        END { for (r in x) if (r in y && y[r] > 0) printf "%.4f\n", x[r] / y[r] }' "$tmp/runs.txt"
}
med() { col "$@" | median; }
# summary.txt: model batch variant median_views median_peak median_rise median_rise1
: > "$tmp/summary.txt"
for cfg in $models; do
    for v in $variants; do
        m=${cfg%%:*}; b=${cfg#*:}
        echo "$m $b $v $(med "$m" "$b" "$v" 5) $(med "$m" "$b" "$v" 6) $(med "$m" "$b" "$v" 7) $(med "$m" "$b" "$v" 8)" >> "$tmp/summary.txt"
    done
done
sm() {
    awk -v m="$1" -v b="$2" -v v="$3" -v k="$4" '$1 == m && $2 == b && $3 == v { print $k; exit }' "$tmp/summary.txt"
}
# ratio_cell MODEL BATCH A B FIELD: "median (min-max)" of the per-round ratios.
ratio_cell() {
    mr=$(ratios "$@" | median || true)
    [ -n "$mr" ] && echo "$(x2 "$mr") ($(ratios "$@" | spread))"
}
ratio_med() { ratios "$@" | median || true; }
# frac MODEL BATCH VARIANT: the step's GFLOP/s over the FMA peak.
frac() {
    fl=$(awk -v m="$1" -v b="$2" '$1 == m && $2 == b { print $3; exit }' "$tmp/flops.txt")
    awk -v v="$(sm "$1" "$2" "$3" 4)" -v f="$fl" -v b="$2" -v p="$fma_peak" \
        'BEGIN { if (v != "" && f != "") printf "%.4f", v / (2 * b) * f / 1e9 / p }'
}
gflops() {
    fl=$(awk -v m="$1" -v b="$2" '$1 == m && $2 == b { print $3; exit }' "$tmp/flops.txt")
    awk -v v="$(sm "$1" "$2" "$3" 4)" -v f="$fl" -v b="$2" 'BEGIN { if (v != "" && f != "") printf "%.1f", v / (2 * b) * f / 1e9 }'
}

commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "?")
if ! git -C "$src" diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi
first_bin=$tmp/$(echo "$models" | awk '{ split($1, a, ":"); print a[1] "-b" a[2] }')
ours_core_found=$("$first_bin" info | sed -n 's/^OpenBLAS core *//p')
ours_core_tuned=$(tuned "$first_bin" info | sed -n 's/^OpenBLAS core *//p')
# shellcheck disable=SC2016 # the backquotes are Markdown's
bt() { echo "$1" | sed 's/[^ ][^ ]*/`&`/g'; }

{
    echo "# Issue 14 benchmark: training step, simclrc vs PyTorch, against the FMA peak"
    echo
    echo "Written by \`bench/step_bench.sh\`; do not edit by hand, re-run it."
    echo
    if [ "$busy" = 1 ]; then
        echo "> **WARNING: THE MACHINE WAS BUSY** (load average $load0 on $ncpu CPUs at the start, over"
        echo "> 0.5 per CPU; run with FORCE=1). These numbers are noisy and do not show what either side can do."
        echo
    fi
    if [ "$steps" -lt 10 ] || [ "$rounds" -lt 5 ]; then
        echo "> **A SMOKE RUN, NOT A RESULT**: $rounds rounds of $steps steps (the benchmark is at least 5 rounds of 10)."
        echo
    fi
    echo "- date: $date_utc; the run took $elapsed s"
    echo "- CPU: $cpu_name (family $cpu_family, model $cpu_model), $ncpu CPUs (nproc); $threads threads on both sides"
    echo "- load average (1, 5, 15 min): $load0 at the start, $load1 at the end"
    echo "- source: $commit; $("$simclrc" --version); binaries compiled with \`simclrc ${flags:+$flags }--batch B\`"
    echo "- $openblas_version core as found: $core_found (PyTorch's and sc_sgemm_rate's); our binary as found: $ours_core_found"
    echo "- $openblas_version core as tuned: $core_best (\`OPENBLAS_CORETYPE=$best\`); our binary tuned: $ours_core_tuned"
    echo "- PyTorch: $torch_version (\`$python\`), \`torch.set_num_threads($threads)\`"
    if [ -n "$env_found" ]; then
        echo "- environment as found: $(bt "$env_found")"
    else
        echo "- environment as found: no OPENBLAS_*, LD_PRELOAD or MALLOC_CONF"
    fi
    echo "- tuned (PT tuned, PT bf16, ours tuned, ours openblas): \`LD_PRELOAD=$preload\` \`OPENBLAS_CORETYPE=$best\`; PyTorch also channels_last"
    echo "- simclrc binaries: $ours_line"
    echo
    echo "## Peak"
    echo
    echo "| measure | GFLOP/s |"
    echo "|---|---:|"
    echo "| FP32 FMA peak, $fma_isa, $threads threads (sc_fma_peak: independent vfmadd231ps) | $fma_peak |"
    echo "| FP32 FMA peak, $fma_isa, 1 thread | $fma_one |"
    echo "| OpenBLAS sgemm 2048², core $core_best (\`OPENBLAS_CORETYPE=$best\`), $threads threads | $sgemm_best |"
    echo "| OpenBLAS sgemm 2048², core $core_found (as found), $threads threads | $sgemm_found |"
    echo
    echo "## Training step: views/s"
    echo
    echo "Medians over $rounds rounds of $steps steps (after one warm-up step); views/s = 2 x batch / step time;"
    echo "a step is forward, NT-Xent, backward and the SGD momentum update on both sides. The variants of a round"
    echo "ran interleaved (ours, PyTorch, ...), in reverse order every other round."
    echo
    if [ "$has_gemm" = 1 ]; then
        echo "| model | batch | ours | ours tuned | ours --gemm=openblas (tuned) | PT | PT tuned | PT bf16 |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    else
        echo "| model | batch | ours | ours tuned | PT | PT tuned | PT bf16 |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
    fi
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        row="| $m | $b |"
        for v in $variants; do row="$row $(sm "$m" "$b" "$v" 4) |"; done
        echo "$row"
    done
    echo
    echo "Ratios of views/s: median of the per-round ratios (min-max over the $rounds rounds)."
    echo
    echo "| model | batch | ours / PT (as found) | ours tuned / PT tuned | ours tuned / PT bf16 |$([ "$has_gemm" = 1 ] && echo " ours openblas / PT tuned |")"
    echo "|---|---:|---:|---:|---:|$([ "$has_gemm" = 1 ] && echo "---:|")"
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        row="| $m | $b | $(ratio_cell "$m" "$b" ours pt 5) | $(ratio_cell "$m" "$b" ours_tuned pt_tuned 5) | $(ratio_cell "$m" "$b" ours_tuned pt_bf16 5) |"
        [ "$has_gemm" = 1 ] && row="$row $(ratio_cell "$m" "$b" ours_openblas pt_tuned 5) |"
        echo "$row"
    done
    echo
    echo "The step's GFLOP/s (the model's forward and backward FLOPs, \`bench-step\`'s \"FLOPs per step\", over the"
    echo "median step time) and its fraction of the FMA peak ($fma_peak GFLOP/s):"
    echo
    echo "| model | batch | GFLOP per step | ours GFLOP/s | of FMA peak | ours tuned GFLOP/s | of FMA peak |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        fl=$(awk -v m="$m" -v b="$b" '$1 == m && $2 == b { printf "%.2f", $3 / 1e9; exit }' "$tmp/flops.txt")
        echo "| $m | $b | $fl | $(gflops "$m" "$b" ours) | $(pct "$(frac "$m" "$b" ours)") | $(gflops "$m" "$b" ours_tuned) | $(pct "$(frac "$m" "$b" ours_tuned)") |"
    done
    echo
    echo "## Memory"
    echo
    echo "MB = 10^6 bytes, medians over the rounds. Peak: the whole process's peak RSS (VmHWM; PyTorch's"
    echo "includes the interpreter and torch). Rise: the peak above the resident size before the model's"
    echo "tensors were allocated (ours: before its state, whose activation arena is zeroed up front; PyTorch:"
    echo "after \`import torch\`, before building the model); ratio: median of the per-round ratios (min-max)."
    echo "Rise at step 1: the peak above the resident size just before the first step (ours then holds its"
    echo "arena and gradients already, PyTorch not)."
    echo
    echo "| model | batch | ours peak | ours rise | PT peak | PT rise | rise ours / PT | ours tuned rise | PT tuned rise | PT bf16 rise | rise at step 1: ours / PT |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        echo "| $m | $b | $(sm "$m" "$b" ours 5) | $(sm "$m" "$b" ours 6) | $(sm "$m" "$b" pt 5) | $(sm "$m" "$b" pt 6) | $(ratio_cell "$m" "$b" ours pt 7) | $(sm "$m" "$b" ours_tuned 6) | $(sm "$m" "$b" pt_tuned 6) | $(sm "$m" "$b" pt_bf16 6) | $(sm "$m" "$b" ours 7) / $(sm "$m" "$b" pt 7) |"
    done
    echo
    echo "## Targets of issue 14"
    echo
    echo "Each on the median of the per-round ratios; \"all rounds\" when the worst round meets it too."
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    verdict() {   # VALUE OP THRESHOLD [WORST]
        awk -v v="$1" -v op="$2" -v t="$3" -v w="${4:-}" 'BEGIN {
            ok = (op == ">=") ? v >= t : v <= t
            all = w == "" ? 0 : ((op == ">=") ? w >= t : w <= t)
            print ok ? (all ? "met (all rounds)" : "met") : "**not met**" }'
    }
    for cfg in resnet18-stl10:32:0.7 resnet18-stl10:64:0.7 resnet18-cifar:32:0.6 resnet-small:32:0.6; do
        m=${cfg%%:*}; rest=${cfg#*:}; b=${rest%%:*}; t=${rest#*:}
        f=$(frac "$m" "$b" ours)
        if [ -z "$f" ]; then echo "| $m b$b: step >= $(pct "$t") of the FMA peak | not measured (not in MODELS) | - |"; continue; fi
        echo "| $m b$b: step >= $(pct "$t") of the FMA peak (ours as found) | $(pct "$f") | $(verdict "$f" ">=" "$t") |"
    done
    for cfg in resnet18-stl10:32:1.5 resnet18-stl10:64:1.5 resnet18-cifar:32:1.5 resnet-small:32:1.3; do
        m=${cfg%%:*}; rest=${cfg#*:}; b=${rest%%:*}; t=${rest#*:}
        v=$(ratio_med "$m" "$b" ours_tuned pt_tuned 5)
        if [ -z "$v" ]; then echo "| $m b$b: >= ${t}x PyTorch tuned | not measured (not in MODELS) | - |"; continue; fi
        w=$(ratios "$m" "$b" ours_tuned pt_tuned 5 | sort -g | head -n 1)
        echo "| $m b$b: ours tuned >= ${t}x PyTorch tuned (fp32) | $(ratio_cell "$m" "$b" ours_tuned pt_tuned 5) | $(verdict "$v" ">=" "$t" "$w") |"
    done
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        v=$(ratio_med "$m" "$b" ours pt 5)
        w=$(ratios "$m" "$b" ours pt 5 | sort -g | head -n 1)
        echo "| $m b$b: as found >= 2x PyTorch as found | $(ratio_cell "$m" "$b" ours pt 5) | $(verdict "$v" ">=" 2 "$w") |"
    done
    for cfg in $models; do
        m=${cfg%%:*}; b=${cfg#*:}
        v=$(ratio_med "$m" "$b" ours pt 7)
        w=$(ratios "$m" "$b" ours pt 7 | sort -g | tail -n 1)
        echo "| $m b$b: memory rise <= 0.6x PyTorch's (as found) | $(ratio_cell "$m" "$b" ours pt 7) | $(verdict "$v" "<=" 0.6 "$w") |"
    done
    if [ -n "$compile_stl10" ] && [ -z "$flags" ]; then
        echo "| resnet18-stl10 compiles in under 10 s without --tune (b32) | $compile_stl10 s | $(verdict "$compile_stl10" "<=" 10) |"
    else
        echo "| resnet18-stl10 compiles in under 10 s without --tune | not measured (no resnet18-stl10:32, or FLAGS set) | - |"
    fi
    echo
    echo "## Top kernels: $profile_cmd (as found)"
    echo
    echo '```'
    if [ -n "$profile" ]; then cat "$tmp/profile_top.txt"; else echo "(PROFILE empty: no profiled run)"; fi
    echo '```'
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "ROUNDS=$rounds STEPS=$steps THREADS=$threads bench/step_bench.sh $build"
    echo "sc_fma_peak --threads $threads"
    echo "OPENBLAS_CORETYPE=$best sc_sgemm_rate --threads $threads 2048; sc_sgemm_rate --threads $threads 2048"
    echo "# for each MODEL:BATCH of: $models"
    echo "simclrc --batch BATCH -o BIN models/MODEL.xml"
    [ "$has_gemm" = 1 ] && echo "simclrc --gemm=openblas --batch BATCH -o BIN-openblas models/MODEL.xml"
    echo "# then $rounds rounds of, interleaved ($order; reversed every other round):"
    echo "BIN bench-step --steps $steps --threads $threads                                  # ours"
    echo "TUNED BIN bench-step --steps $steps --threads $threads                            # ours tuned"
    [ "$has_gemm" = 1 ] && echo "TUNED BIN-openblas bench-step --steps $steps --threads $threads                   # ours openblas"
    echo "/usr/bin/python3 bench/torch_step_bench.py models/MODEL.xml --batch BATCH --steps $steps --threads $threads  # PT"
    echo "TUNED /usr/bin/python3 bench/torch_step_bench.py ... --channels-last              # PT tuned"
    echo "TUNED /usr/bin/python3 bench/torch_step_bench.py ... --channels-last --bf16       # PT bf16"
    echo "# TUNED = env LD_PRELOAD=$preload OPENBLAS_CORETYPE=$best"
    echo "$profile_cmd"
    echo '```'
    echo
    echo "## Every run"
    echo
    echo "| model | batch | round | variant | views/s | peak RSS MB | rise MB | rise at step 1 MB |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$tmp/runs.txt"
} > "$tmp/RESULTS.md"
cp "$tmp/RESULTS.md" "$out"

echo
echo "medians ($threads threads; FMA peak $fma_peak GFLOP/s, sgemm $sgemm_best GFLOP/s with $best):"
printf '%-16s %5s' model batch
for v in $variants; do printf ' %13s' "$v"; done
printf ' %9s\n' "of peak"
for cfg in $models; do
    printf '%-16s %5s' "${cfg%%:*}" "${cfg#*:}"
    for v in $variants; do printf ' %13s' "$(sm "${cfg%%:*}" "${cfg#*:}" "$v" 4)"; done
    printf ' %9s\n' "$(pct "$(frac "${cfg%%:*}" "${cfg#*:}" ours)")"
done
echo "wrote $out ($elapsed s)"
