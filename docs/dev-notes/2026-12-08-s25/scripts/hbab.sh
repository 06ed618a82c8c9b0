#!/bin/bash
Q=/tmp/lead25/q; E=/work/shared/data/eds
for t in base main; do
  if [ $t = base ]; then T=/tmp/lead25/base; else T=/work/main; fi
  (cd $T && PYTHONPATH=$T/src xvfb-run -a .venv/bin/python benchmarks/bench_gui_heartbeat.py --file $E/jeol/rawdata.ASW --thread-clocks --out $Q/hbjeol_$t.json > $Q/hbjeol_$t.log 2>&1)
done
echo HBAB >> $Q/done
