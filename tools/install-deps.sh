#!/usr/bin/env bash
# Installs the Debian packages simclrc needs to build, test and run its
# demos, when any is missing. Needs root (or sudo) only when installing.
# With arguments, installs those packages instead, by the same rules
# (bench/install-deps.sh passes the benchmark's one extra package).
set -euo pipefail

pkgs=(
  cmake gcc make pkg-config
  llvm-19-dev               # LLVM C API for code generation
  libxml2-dev libxml2-utils # model parsing and XSD validation (xmllint in tests)
  libopenblas-dev           # GEMM
  libcmocka-dev             # unit tests
  libopenmpi-dev            # simclrc --mpi: data-parallel training binaries
  openmpi-bin               # mpirun, for those binaries and their tests
  python3-torch python3-torchvision  # reference results in tests (/usr/bin/python3)
  dataset-fashion-mnist     # the embedded default dataset
  gnuplot-nox               # plots: the ablation's curves, tools/plot-run.sh
  dpkg-dev man-db           # the Debian package (cpack: dpkg-shlibdeps), the man page test
  clang-19 libclang-rt-19-dev  # libFuzzer for the fuzz targets (tools/fuzz.sh)
)
[ $# -gt 0 ] && pkgs=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
