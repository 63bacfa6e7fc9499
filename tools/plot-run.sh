#!/bin/sh
# plot-run.sh RUN_DIR [OUT.png]: a picture of a run (gnuplot).
#
# From a `train` run directory (metrics.csv, knn.csv): the loss, the
# learning rate, the training speed in views per second (two views per
# image; the global batch comes from checkpoint.safetensors) and the kNN
# monitor's top-1 accuracy, over steps. From a `finetune` run directory
# (finetune.csv): its training loss, learning rate and test accuracy per
# epoch, over steps. A directory with both gets both. OUT defaults to
# RUN_DIR/run.png.
set -eu

usage() { echo "usage: plot-run.sh RUN_DIR [OUT.png]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
run=${1%/}
out=${2:-$run/run.png}
[ -d "$run" ] || { echo "plot-run.sh: $run: not a directory" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot-run.sh: gnuplot is not installed (gnuplot-nox)" >&2; exit 1; }

rows() { [ -f "$1" ] && [ "$(wc -l <"$1")" -gt 1 ]; }
metrics=$run/metrics.csv knn=$run/knn.csv ft=$run/finetune.csv
rows "$metrics" || metrics=""
rows "$knn" || knn=""
rows "$ft" || ft=""
if [ -z "$metrics" ] && [ -z "$ft" ]; then
  echo "plot-run.sh: $run holds neither metrics.csv nor finetune.csv with rows" >&2
  exit 1
fi

# The global batch, from the checkpoint's safetensors header (8 bytes of
# little-endian length, then JSON with the run's metadata).
batch=""
ckpt=$run/checkpoint.safetensors
if [ -f "$ckpt" ]; then
  len=$(od -An -tu8 -N8 "$ckpt" | tr -d ' ')
  if [ -n "$len" ] && [ "$len" -lt 100000000 ]; then
    batch=$(head -c $((8 + len)) "$ckpt" | tail -c "$len" |
      grep -ao '"train/global_batch" *: *"[0-9]*"' | grep -o '[0-9]*"$' | tr -d '"' || true)
  fi
fi

panels=0
[ -n "$metrics" ] && panels=$((panels + 4))
[ -n "$ft" ] && panels=$((panels + 2))
nrows=$(((panels + 1) / 2))
title=$(basename "$(cd "$run" && pwd)")
# All panels over the same steps.
last=0
[ -n "$metrics" ] && last=$(tail -n 1 "$metrics" | cut -d, -f1)
[ -n "$ft" ] && last_ft=$(tail -n 1 "$ft" | cut -d, -f2) && [ "$last_ft" -gt "$last" ] && last=$last_ft

{
  cat <<GP
set terminal pngcairo size 1100,$((330 * nrows)) font "sans,10"
set output "$out"
set datafile separator ","
set key autotitle columnhead
set grid
set xlabel "step"
set xrange [0:$last]
set multiplot layout $nrows,2 title "run $title"
GP
  if [ -n "$metrics" ]; then
    # The loss per step and its mean over 25-step windows.
    cat <<GP
set title "NT-Xent loss"
set key top right
bin(s) = 25 * floor((s - 1) / 25) + 13
plot "$metrics" using 1:3 with lines lc rgb "#b0c4de" title "per step", \
     "$metrics" using (bin(\$1)):3 smooth unique with lines lw 2 lc rgb "#1f4e9a" title "mean of 25 steps"
set title "learning rate"
set key off
set format y "%g"
stats "$metrics" using 4 nooutput
set yrange [0:1.15 * STATS_max]
plot "$metrics" using 1:4 with lines lw 2 lc rgb "#2a7f3f"
set autoscale y
GP
    echo 'set key top right'
    if [ -n "$batch" ]; then
      printf 'set title "training speed (global batch %s, two views per image)"\n' "$batch"
      printf 'set ylabel "views/s"\n'
      printf 'plot "%s" using 1:(2.0 * %s / $6) with lines lc rgb "#e8c090" title "per step", \\\n' "$metrics" "$batch"
      printf '     "%s" using (bin($1)):(2.0 * %s / $6) smooth unique with lines lw 2 lc rgb "#c07020" title "mean of 25 steps"\n' "$metrics" "$batch"
    else
      printf 'set title "training speed (no checkpoint: batch unknown)"\nset ylabel "steps/s"\n'
      printf 'plot "%s" using 1:(1.0 / $6) with lines lc rgb "#e8c090" title "per step", \\\n' "$metrics"
      printf '     "%s" using (bin($1)):(1.0 / $6) smooth unique with lines lw 2 lc rgb "#c07020" title "mean of 25 steps"\n' "$metrics"
    fi
    echo 'set ylabel ""'
    echo 'set key off'
    if [ -n "$knn" ]; then
      cat <<GP
set title "kNN top-1 accuracy (k 200, test split)"
set format y "%.0f%%"
plot "$knn" using 1:(100 * \$3) with linespoints lw 2 pt 7 lc rgb "#8a2be2"
set format y "%g"
GP
    else
      cat <<GP
set title "kNN top-1 accuracy: no measurement (--knn-every 0)"
unset key
set yrange [0:100]
plot NaN notitle
set autoscale y
GP
    fi
  fi
  if [ -n "$ft" ]; then
    cat <<GP
set title "fine-tuning: training loss and learning rate"
set key top right
set y2tics
set ytics nomirror
plot "$ft" using 2:4 with linespoints pt 7 lw 2 lc rgb "#1f4e9a" title "train loss (epoch mean)", \
     "$ft" using 2:3 axes x1y2 with linespoints pt 5 lc rgb "#2a7f3f" title "lr (right axis)"
unset y2tics
set ytics mirror
set title "fine-tuning: test accuracy per epoch"
set key off
set format y "%.1f%%"
plot "$ft" using 2:(100 * \$5) with linespoints lw 2 pt 7 lc rgb "#8a2be2"
GP
  fi
  echo "unset multiplot"
} | gnuplot
echo "$out"
