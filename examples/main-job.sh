#!/usr/bin/env bash
# The main job. Installs what is missing, builds, then (until the training
# binary exists) shows the ResNet-18 graph summary and runs one training
# step of resnet-small in the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

build/compiler/simclrc --emit=graph models/resnet18-stl10.xml | sed -n '/^summary:/,$p'
mkdir -p run
build/compiler/simclrc --emit=step-dump --seed 0 --batch 8 -o run/step-resnet-small.safetensors models/resnet-small.xml
echo "one training step of resnet-small (batch 8) in the interpreter: run/step-resnet-small.safetensors"
