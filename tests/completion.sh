#!/bin/bash
# Bash completion (tools/simclrc.bash-completion) against the programs:
# simclrc's options, --emit kinds and model names; a training binary's
# subcommands and a subcommand's options.
#   completion.sh SIMCLRC TRAINING_BINARY
set -u
simclrc=$1 binary=$2
PATH=$(dirname "$simclrc"):$PATH
. "$(dirname "$0")/../tools/simclrc.bash-completion"
fails=0
# expect FUNCTION "WANTED WORDS" WORD...: completing the last word gives
# exactly WANTED WORDS (in order).
expect() {
    local f=$1 want=$2
    shift 2
    COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMPREPLY=()
    "$f"
    if [[ "${COMPREPLY[*]}" == "$want" ]]; then
        echo "ok   [$*] -> $want"
    else
        echo "FAIL [$*] -> '${COMPREPLY[*]}', want '$want'"
        fails=1
    fi
}
expect _simclrc "--emit=" "$simclrc" --em
expect _simclrc "exe obj asm llvm graph dot memplan step-dump" "$simclrc" --emit = ""
expect _simclrc "--list-models" "$simclrc" --list
expect _simclrc "resnet18-cifar resnet18-stl10 resnet18-stl10-barlow resnet18-stl10-byol resnet18-stl10-paper resnet18-stl10-vicreg" "$simclrc" resnet18-
expect _simclrc "encoder" "$simclrc" --graph = e
expect _simclrc "openblas" "$simclrc" --gemm = o
expect _simclrc_binary "train" "$binary" tr
expect _simclrc_binary "bench-step" "$binary" be
expect _simclrc_binary "--data --deterministic" "$binary" train --d
expect _simclrc_binary "--ckpt" "$binary" eval --ck
expect _simclrc_binary "fold0 fold1 fold2 fold3 fold4 fold5 fold6 fold7 fold8 fold9" "$binary" train --split fo
complete -p resnet-small 2>/dev/null | grep -q _simclrc_binary || { echo "FAIL: resnet-small has no completion"; fails=1; }
exit $fails
