#!/bin/sh
# Communication share of the training step under MPI on one machine: a
# binary built with `simclrc --mpi` runs bench-step under mpirun with 1, 2
# and 4 ranks (the same per-rank batch, so the global batch grows with the
# ranks), global batchnorm on; bench-step prints the time spent inside the
# communicator's calls (gathers, batchnorm allreduces, gradient buckets and
# the wait for them) next to the step time, averaged over the ranks.
# Results go to bench/MPI_RESULTS.md.
#
#   bench/mpi_bench.sh [BUILD_DIR] [MODEL.xml] [BATCH_PER_RANK] [STEPS]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
model=${2:-$src/models/resnet-small.xml}
batch=${3:-32}
steps=${4:-5}
out=$src/bench/MPI_RESULTS.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/compiler/simclrc" --mpi --batch "$batch" "$model" -o "$tmp/model"
export OMPI_MCA_btl_vader_single_copy_mechanism=none
{
  echo "# MPI: communication share of the step"
  echo
  echo "\`bench/mpi_bench.sh $*\` on $(nproc) cores ($(uname -m)), $(date -u +%Y-%m-%d);"
  echo "model $(basename "$model"), batch $batch per rank, $steps timed steps, global batchnorm,"
  echo "Open MPI $(mpirun --version 2>/dev/null | head -1 | awk '{print $NF}') over shared memory (btl self,vader)."
  echo "Ranks are not bound to cores (\`--bind-to none\`); threads per rank: the CPUs a rank may use divided by the ranks on the machine (at least 1), so 4 ranks oversubscribe 2 cores."
  echo
  echo '```'
  for k in 1 2 4; do
    echo "## mpirun -np $k"
    mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader -np "$k" \
      "$tmp/model" bench-step --steps "$steps" --global-bn
  done
  echo '```'
  echo
  echo "Reading: images/s and ms/step are per rank (the global rate is K times the"
  echo "images/s). The communication time is the time inside the communicator's"
  echo "calls, which includes waiting for the slowest rank: with more ranks than"
  echo "free cores, most of it is that wait (the batchnorm allreduces are the"
  echo "first collectives of every step, so they absorb the imbalance), not"
  echo "transfer; the gathered projections and the gradient buckets themselves"
  echo "are small next to the step."
} | tee "$out"
