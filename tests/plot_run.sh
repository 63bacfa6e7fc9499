#!/bin/sh
# tools/plot-run.sh on small run directories: a train run (metrics.csv,
# knn.csv), a fine-tuning run (finetune.csv), and the failures (no such
# directory, no rows). Skipped without gnuplot.
set -u
plot=$(dirname "$0")/../tools/plot-run.sh
command -v gnuplot >/dev/null 2>&1 || { echo "gnuplot is not installed: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
png() { # the file starts with PNG's signature
  [ "$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
}
check() { if "$@"; then echo "ok   $*"; else echo "FAIL $*"; fails=1; fi; }

mkdir "$tmp/train" "$tmp/ft" "$tmp/empty"
awk 'BEGIN { print "step,epoch,loss,lr,data_wait_s,step_s"
             for (s = 1; s <= 60; s++) printf "%d,%d,%.4f,0.001,0.001,%.3f\n", s, int((s - 1) / 30) + 1, 5 - s / 30, 0.08 + s / 1000 }' \
  >"$tmp/train/metrics.csv"
printf 'step,epoch,knn_top1,seconds\n0,0,0.50,1.0\n30,1,0.61,1.0\n60,2,0.66,1.0\n' >"$tmp/train/knn.csv"
printf 'epoch,step,lr,train_loss,test_accuracy,seconds\n1,10,0.05,1.2,0.71,2.0\n2,20,0.0,0.8,0.76,2.0\n' >"$tmp/ft/finetune.csv"
printf 'step,epoch,loss,lr,data_wait_s,step_s\n' >"$tmp/empty/metrics.csv"

check sh "$plot" "$tmp/train"
check png "$tmp/train/run.png"
check sh "$plot" "$tmp/ft" "$tmp/ft.png"
check png "$tmp/ft.png"
check test ! -e "$tmp/empty/run.png"
if sh "$plot" "$tmp/empty" 2>"$tmp/err"; then echo "FAIL: a run without rows was plotted"; fails=1
elif grep -q "neither metrics.csv nor finetune.csv" "$tmp/err"; then echo "ok   no rows: $(cat "$tmp/err")"
else echo "FAIL: unclear message: $(cat "$tmp/err")"; fails=1; fi
if sh "$plot" "$tmp/nonexistent" 2>/dev/null; then echo "FAIL: a missing directory was plotted"; fails=1
else echo "ok   missing directory"; fi
exit $fails
