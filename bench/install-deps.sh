#!/usr/bin/env bash
# Installs what bench/step_bench.sh needs beyond tools/install-deps.sh (the
# build, the tests and /usr/bin/python3's torch): libjemalloc2, which the
# benchmark preloads into PyTorch's tuned run and into ours alike. Not a
# dependency of simclrc or of its tests.
set -euo pipefail

dpkg-query -W -f='${Status}' libjemalloc2 2>/dev/null | grep -q "install ok installed" && exit 0
echo "bench/install-deps: installing libjemalloc2" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bench/install-deps: need root to install libjemalloc2" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends libjemalloc2
