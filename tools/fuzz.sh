#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz with libFuzzer: builds them with
# clang-19 (-fsanitize=fuzzer,address,undefined) into build-fuzz/, then
# fuzzes each target for SECONDS (default 60) starting from its corpus in
# tests/fuzz/corpus/TARGET. New inputs go to build-fuzz/corpus/TARGET,
# crashes to build-fuzz/findings/TARGET; a finding, once fixed, belongs in
# tests/fuzz/corpus/TARGET/ as regress-*.
#   tools/fuzz.sh                 every target, 60 s each
#   tools/fuzz.sh fuzz_spec 1800  one target for half an hour
# JOBS (default 1) parallel fuzzing jobs per target; NICE (default 19).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-60}
jobs=${JOBS:-1}
targets=(fuzz_spec fuzz_safetensors fuzz_stl10 fuzz_idx)
if [ "$target" != all ]; then
  case " ${targets[*]} " in *" $target "*) ;; *) echo "fuzz.sh: unknown target '$target' (${targets[*]})" >&2; exit 2 ;; esac
  targets=("$target")
fi
if ! command -v clang-19 >/dev/null; then
  echo "fuzz.sh: clang-19 is missing (tools/install-deps.sh installs clang-19 and libclang-rt-19-dev)" >&2
  exit 1
fi
CC=clang-19 cmake -S . -B build-fuzz -DSC_FUZZ=ON -DSC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
par=()
[ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/findings/$t"
  echo "== $t: $seconds s" >&2
  # -close_fd_mask=2 hides the targets' own error messages; reports stay.
  nice -n "${NICE:-19}" "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" "${par[@]}" \
    -timeout=30 -rss_limit_mb=4096 -close_fd_mask=2 -artifact_prefix="build-fuzz/findings/$t/" \
    "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" || status=1
done
exit $status
