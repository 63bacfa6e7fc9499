#!/usr/bin/env bash
# The pretraining ablation: pretrains resnet-small with SimCLR (as the main
# job does), then fine-tunes it twice with identical settings (epochs,
# learning rate, seed, so the same classifier initialisation, data order
# and augmentation): from the pretrained checkpoint and from random
# initialisation. Writes, into run/ablation:
#   ablation.png   test accuracy per epoch of both runs (gnuplot)
#   ablation.md    the same as a Markdown table
#   pretrained/finetune.csv, random/finetune.csv   the runs' own logs
#
# usage: examples/ablation.sh [--ckpt PRETRAINED.safetensors]
#   --ckpt   skip the pretraining and start from this resnet-small
#            checkpoint (e.g. run/main-job/pretrain/checkpoint.safetensors)
# Environment: EPOCHS (pretraining, 5), LIMIT (dataset images, 20000),
# FT_EPOCHS (fine-tuning, 5), FT_LR (finetune's default: 0.05, SGD).
set -euo pipefail
. "$(dirname "$0")/common.sh"
sc_enter "$0"
SECONDS=0
ckpt=
case "${1:-}" in
  --ckpt) ckpt=${2:?--ckpt needs a file}; [ -f "$ckpt" ] || { echo "ablation.sh: error: $ckpt: no such file" >&2; exit 1; } ;;
  -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "ablation.sh: error: unknown argument '$1'" >&2; exit 2 ;;
esac
epochs=${EPOCHS:-5}
limit=${LIMIT:-20000}
ft_epochs=${FT_EPOCHS:-5}
ft_args=(--epochs "$ft_epochs" --seed 0)
if [ -n "${FT_LR:-}" ]; then ft_args+=(--lr "$FT_LR"); fi

sc_setup
data=$(sc_default_data "$limit")
out=run/ablation
mkdir -p "$out"
bin=$out/resnet-small
"$SC_SIMCLRC" resnet-small -o "$bin"
threads=$(nproc)
if [ -z "$ckpt" ]; then
  batch=$("$bin" info | sed -n 's/^batch *\([0-9]*\) images.*/\1/p')
  echo "== SimCLR pretraining on $data =="
  rm -rf "$out/pretrain"
  "$bin" train --data "$data" --out "$out/pretrain" --epochs "$epochs" \
    --max-steps $((epochs * (limit / batch))) --threads "$threads" --knn-every 0 --log-every 200
  ckpt=$out/pretrain/checkpoint.safetensors
fi

for arm in pretrained random; do
  echo
  echo "== fine-tuning from the $arm encoder =="
  if [ $arm = pretrained ]; then from=(--ckpt "$ckpt"); else from=(--random-init); fi
  rm -rf "${out:?}/$arm"
  "$bin" finetune --data "$data" "${from[@]}" "${ft_args[@]}" --threads "$threads" --out "$out/$arm"
done

# The table: epoch, then test accuracy (column 5 of finetune.csv) of each run.
join -t, <(tail -n +2 "$out/pretrained/finetune.csv" | cut -d, -f1,5) \
         <(tail -n +2 "$out/random/finetune.csv" | cut -d, -f1,5) >"$out/curves.csv"
{
  echo "| epoch | fine-tuned from SimCLR | fine-tuned from random init |"
  echo "|---:|---:|---:|"
  awk -F, '{ printf "| %d | %.2f%% | %.2f%% |\n", $1, 100 * $2, 100 * $3 }' "$out/curves.csv"
} >"$out/ablation.md"

gnuplot <<GP
set terminal pngcairo size 800,500 font "sans,11"
set output "$out/ablation.png"
set datafile separator ","
set title "resnet-small fine-tuned on $(basename "$data"): test accuracy"
set xlabel "epoch"
set ylabel "test top-1 accuracy (%)"
set xtics 1
set key bottom right
set grid
plot "$out/curves.csv" using 1:(100*\$2) with linespoints lw 2 pt 7 title "from SimCLR pretraining", \
     "$out/curves.csv" using 1:(100*\$3) with linespoints lw 2 pt 5 title "from random initialisation"
GP

echo
cat "$out/ablation.md"
echo "wrote $out/ablation.png and $out/ablation.md in $(sc_minutes $SECONDS)"
