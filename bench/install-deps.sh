#!/usr/bin/env bash
# Installs what bench/step_bench.sh needs beyond tools/install-deps.sh (the
# build, the tests and /usr/bin/python3's torch): libjemalloc2, which the
# benchmark preloads into PyTorch's tuned run and into ours alike. Not a
# dependency of simclrc or of its tests.
set -euo pipefail
exec "$(dirname "$0")/../tools/install-deps.sh" libjemalloc2
