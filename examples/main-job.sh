#!/usr/bin/env bash
# The main job (the README's first command). On a fresh machine: installs
# what is missing, builds, prepares the dataset (the real STL-10 when
# data/stl10_binary holds it, else Fashion-MNIST converted to the STL-10
# layout in data/fmnist-stl10), compiles resnet-small, pretrains
# it with SimCLR (the kNN monitor at the start and after every epoch),
# draws the run (run/main-job/pretrain.png: loss, learning rate, views/s,
# kNN accuracy), then runs the linear probe (eval) on the pretrained
# encoder and on a random-init one, and prints both test accuracies.
#
# Sized to finish in under 20 minutes on 2 cores: 20000 Fashion-MNIST
# images, 5 epochs of pretraining (1560 steps of 64 images; on the real
# STL-10 the same number of steps over its unlabeled split). EPOCHS and
# LIMIT in the environment change that. Everything lands in run/main-job.
set -euo pipefail
. "$(dirname "$0")/common.sh"
sc_enter "$0"
SECONDS=0
epochs=${EPOCHS:-5}
limit=${LIMIT:-20000}

sc_setup
data=$(sc_default_data "$limit")
run=run/main-job
rm -rf "$run"
mkdir -p "$run"
bin=$run/resnet-small
"$SC_SIMCLRC" resnet-small -o "$bin"
"$bin" info | sed -n '1,8p'
threads=$(nproc)
batch=$("$bin" info | sed -n 's/^batch *\([0-9]*\) images.*/\1/p')
max_steps=$((epochs * (limit / batch)))

echo
echo "== SimCLR pretraining on $data =="
"$bin" train --data "$data" --out "$run/pretrain" --epochs "$epochs" --max-steps "$max_steps" \
  --threads "$threads" --knn-init --knn-every 1 --log-every 200
pretrain_s=$SECONDS
"$SC_PLOT" "$run/pretrain" "$run/pretrain.png"

echo
echo "== linear probe: pretrained encoder =="
"$bin" eval --data "$data" --ckpt "$run/pretrain/checkpoint.safetensors" --threads "$threads" |
  tee "$run/probe-pretrained.txt"
echo
echo "== linear probe: random-init encoder =="
"$bin" eval --data "$data" --random-init --threads "$threads" | tee "$run/probe-random.txt"

pre=$(sed -n 's/^test_accuracy //p' "$run/probe-pretrained.txt")
rnd=$(sed -n 's/^test_accuracy //p' "$run/probe-random.txt")
echo
echo "== main job: resnet-small on $data =="
awk -v p="$pre" -v r="$rnd" 'BEGIN {
  printf "linear probe test accuracy, pretrained (SimCLR): %.2f%%\n", 100 * p
  printf "linear probe test accuracy, random init:         %.2f%%\n", 100 * r
  printf "pretraining gains %+.2f points\n", 100 * (p - r) }' | tee "$run/summary.txt"
echo "total time $(sc_minutes $SECONDS) (setup and pretraining $(sc_minutes "$pretrain_s"))" |
  tee -a "$run/summary.txt"
