#!/bin/bash
# rebuild the caches after the machine reset (lead, s25)
cd /work/main
L=/tmp/lead25/caches.log
python3 -m venv /tmp/espmvenv && /tmp/espmvenv/bin/pip install -q espm==1.1.3 -c /work/shared/data/espm_dev/requirements-espm.lock.txt && echo "DONE espmvenv $(date +%H:%M)" >> $L
until grep -q "SETUP DONE" /tmp/setup.log; do sleep 10; done
for s in "espm_heldout4.py" "espm_heldout5.py" "espm_heldout.py" "espm_cases.py"; do
  nice -n 5 /tmp/espmvenv/bin/python benchmarks/$s >> /tmp/lead25/caches_gen.log 2>&1 && echo "DONE $s $(date +%H:%M)" >> $L
done
nice -n 5 /tmp/espmvenv/bin/python benchmarks/espm_heldout4.py --seed-offset 1 --out ~/.cache/napari-sigma/heldout4_s1 >> /tmp/lead25/caches_gen.log 2>&1 && echo "DONE heldout4_s1 $(date +%H:%M)" >> $L
nice -n 5 /tmp/espmvenv/bin/python benchmarks/espm_heldout5.py --seed-offset 1 --out ~/.cache/napari-sigma/heldout5_s1 >> /tmp/lead25/caches_gen.log 2>&1 && echo "DONE heldout5_s1 $(date +%H:%M)" >> $L
nice -n 5 bash /work/shared/peers/emsigma/setup.sh /work/main/.emsigma-venv >> /tmp/lead25/caches_gen.log 2>&1 && echo "DONE emsigma $(date +%H:%M)" >> $L
echo "ALL DONE $(date +%H:%M)" >> $L
