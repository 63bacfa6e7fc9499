#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs what is missing, builds
# (warnings are errors), runs CTest. SC_SANITIZE=1 builds with AddressSanitizer
# and UndefinedBehaviorSanitizer into build-asan/ instead of build/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

if [ "${SC_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  # -O2 keeps the sanitized run of the interpreter-heavy tests in budget.
  flags=(-DSC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  dir=build
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$dir" -DSC_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure -j"$(nproc)" --timeout 600
