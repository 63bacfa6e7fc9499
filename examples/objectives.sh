#!/usr/bin/env bash
# Objectives compared: pretrains resnet-small (the main job's model) with
# each objective the format offers -- SimCLR's NT-Xent, Barlow Twins,
# VICReg and BYOL -- for the same number of steps on the same data, then
# runs the linear probe on each pretrained encoder and on a random-init
# one. Only the <loss> differs between the specs (BYOL adds its
# <predictor>); encoder, head, augmentations, optimizer, batch, seed and
# steps are resnet-small's. Writes, into run/objectives:
#   objectives.md    linear-probe test accuracy and pretraining time per objective
#   objectives.png   the same as a bar chart (gnuplot)
#   SPEC.xml, SPEC/  each variant's spec and its training run
#
# usage: examples/objectives.sh
# Environment: EPOCHS (pretraining, 3), LIMIT (dataset images, 20000),
# OBJECTIVES (a subset of: nt-xent barlow-twins vicreg byol).
set -euo pipefail
. "$(dirname "$0")/common.sh"
sc_enter "$0"
case "${1:-}" in
  -h|--help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "objectives.sh: error: unknown argument '$1'" >&2; exit 2 ;;
esac
SECONDS=0
epochs=${EPOCHS:-3}
limit=${LIMIT:-20000}
objectives=${OBJECTIVES:-nt-xent barlow-twins vicreg byol}

sc_setup
data=$(sc_default_data "$limit")
out=run/objectives
mkdir -p "$out"
threads=$(nproc)
if [ "$SC_CHECKOUT" = 1 ]; then base=models/resnet-small.xml; else base=$(simclrc --list-models | awk '$1 == "resnet-small" { print $2 }'); fi
[ -f "$base" ] || { echo "objectives.sh: error: resnet-small.xml not found" >&2; exit 1; }

# The <loss> line of each variant (hyperparameters: see the README).
loss_of() {
  case $1 in
    nt-xent) echo '<loss type="nt-xent" temperature="0.2"/>' ;;
    barlow-twins) echo '<loss type="barlow-twins" lambda="0.0051" scale="1"/>' ;;
    vicreg) echo '<loss type="vicreg" sim-coeff="25" std-coeff="25" cov-coeff="1" eps="1e-4"/>' ;;
    byol) echo '<predictor><linear units="64"/><batchnorm/><relu/><linear units="32"/></predictor> <loss type="byol" tau-base="0.99"/>' ;;
    *) echo "objectives.sh: error: unknown objective '$1'" >&2; exit 2 ;;
  esac
}

printf 'objective,accuracy,seconds\n' >"$out/results.csv"
for obj in $objectives; do
  spec=$out/$obj.xml
  line=$(loss_of "$obj")
  sed -e "s|^\( *\)<loss [^>]*/>|\1$line|" -e "s|name=\"resnet-small\"|name=\"resnet-small-$obj\"|" "$base" >"$spec"
  grep -q "type=\"$obj\"" "$spec" || { echo "objectives.sh: error: could not set the loss in $spec" >&2; exit 1; }
  bin=$out/$obj-bin
  "$SC_SIMCLRC" -o "$bin" "$spec"
  batch=$("$bin" info | sed -n 's/^batch *\([0-9]*\) images.*/\1/p')
  echo
  echo "== $obj: pretraining on $data =="
  rm -rf "${out:?}/$obj"
  t0=$SECONDS
  "$bin" train --data "$data" --out "$out/$obj" --epochs "$epochs" --max-steps $((epochs * (limit / batch))) \
    --threads "$threads" --knn-every 0 --log-every 200
  t=$((SECONDS - t0))
  acc=$("$bin" eval --data "$data" --ckpt "$out/$obj/checkpoint.safetensors" --threads "$threads" |
    sed -n 's/^test_accuracy //p')
  printf '%s,%s,%s\n' "$obj" "$acc" "$t" >>"$out/results.csv"
done
echo
echo "== random init =="
bin=$out/$(set -- $objectives; echo "$1")-bin
acc=$("$bin" eval --data "$data" --random-init --threads "$threads" | sed -n 's/^test_accuracy //p')
printf 'random init,%s,0\n' "$acc" >>"$out/results.csv"

{
  echo "| objective | linear probe test accuracy | pretraining time |"
  echo "|---|---:|---:|"
  tail -n +2 "$out/results.csv" | awk -F, '{ t = $3 > 0 ? sprintf("%d:%02d", $3 / 60, $3 % 60) : "-"; printf "| %s | %.2f%% | %s |\n", $1, 100 * $2, t }'
} >"$out/objectives.md"

gnuplot <<GP
set terminal pngcairo size 800,500 font "sans,11"
set output "$out/objectives.png"
set datafile separator ","
set title "resnet-small, $epochs epochs of pretraining on $(basename "$data"): linear probe"
set ylabel "test top-1 accuracy (%)"
set style fill solid 0.6 border -1
set boxwidth 0.6
set yrange [0:100]
set grid ytics
unset key
plot "$out/results.csv" every ::1 using 0:(100*\$2):xtic(1) with boxes lc rgb "#4472c4", \
     "" every ::1 using 0:(100*\$2+3):(sprintf("%.1f", 100*\$2)) with labels
GP

echo
cat "$out/objectives.md"
echo "wrote $out/objectives.png and $out/objectives.md in $(sc_minutes $SECONDS)"
