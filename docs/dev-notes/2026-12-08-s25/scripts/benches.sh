#!/bin/bash
# #10 benches on a tree (lead s25). usage: benches.sh TREE OUTDIR
T=${1:-/work/main}; O=${2:-/tmp/lead25/bench}; mkdir -p $O; cd $T
P="nice -n 5 env PYTHONPATH=src .venv/bin/python"
C=~/.cache/napari-sigma
for s in heldout4 heldout4_s1 heldout heldout5 heldout5_s1; do
  $P benchmarks/espm_heldout_eval.py --heldout $C/$s --run --out $O/$s --json $O/$s.json > $O/$s.log 2>&1
done
$P benchmarks/espm_heldout_eval.py --heldout /work/shared/data/espm_dev --run --out $O/espm_dev --json $O/espm_dev.json > $O/espm_dev.log 2>&1
$P benchmarks/bench_quant.py --espm-only --espm-dir $C/espm_atomic --out $O/espm_atomic.json > $O/espm_atomic.log 2>&1
$P benchmarks/bench_quant.py --no-espm --seeds 0 1 --out $O/synth.json > $O/synth.log 2>&1
nice -n 5 bash scripts/demo.sh > $O/demo.log 2>&1
$P benchmarks/bench_accuracy.py --skip-emsigma --methods ours_auto,ours_trueK,kmeans --seeds 0 --out $O/acc.json > $O/acc.log 2>&1
echo BENCHES DONE $(date +%H:%M) >> $O/done
