#!/bin/bash
# quiet figures (lead s25): heartbeat 30x30 x2, JEOL, P45; 256² vs emsigma x2; 1024² x2
Q=${1:-/tmp/lead25/q}; mkdir -p $Q; cd /work/main
E=/work/shared/data/eds
for i in 1 2; do xvfb-run -a .venv/bin/python benchmarks/bench_gui_heartbeat.py --file $E/bruker/30x30_instructively_packed_16bit_compressed.bcf --thread-clocks --out $Q/hb30_$i.json > $Q/hb30_$i.log 2>&1; done
xvfb-run -a .venv/bin/python benchmarks/bench_gui_heartbeat.py --file $E/jeol/rawdata.ASW --thread-clocks --out $Q/hbjeol.json > $Q/hbjeol.log 2>&1
xvfb-run -a .venv/bin/python benchmarks/bench_gui_heartbeat.py --file $E/bruker/P45_the_default_job.bcf --thread-clocks --out $Q/hbp45.json > $Q/hbp45.log 2>&1
for i in 1 2; do PYTHONPATH=src .venv/bin/python benchmarks/bench_speed.py --sizes '' --emsigma-sizes 256 --threads 2 --out $Q/s256_$i.json > $Q/s256_$i.log 2>&1; done
for i in 1 2; do PYTHONPATH=src .venv/bin/python benchmarks/bench_speed.py --sizes '' --e2e-sizes 1024 --e2e-repeats 2 --out $Q/e1024_$i.json > $Q/e1024_$i.log 2>&1; done
echo QUIET DONE $(date +%H:%M) >> $Q/done
