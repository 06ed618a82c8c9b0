#!/bin/bash
# whole `napari-sigma run c256.hspy` process, base 9b66ec9 vs main, alternated (lead s25)
O=/tmp/lead25/cliab; mkdir -p $O
for i in 1 2 3; do for t in base main; do
  if [ $t = base ]; then T=/tmp/lead25/base; else T=/work/main; fi
  rm -rf $O/out_$t
  (cd $T && env PYTHONPATH=$T/src /usr/bin/time -f "$t $i wall %e user %U sys %S" .venv/bin/python -c "import sys; from napari_sigma.cli import main; sys.exit(main())" run /tmp/speed25/c256.hspy --out $O/out_$t > $O/run_${t}_$i.log 2>> $O/times.log)
  tail -1 $O/times.log; cat /proc/loadavg
done; done
