#!/bin/bash
Q=${1:-/tmp/lead25/q}
for f in $Q/hb*.log; do
  awk -v F=$(basename $f) '/longest block/ && !/^open/ {n=split($0,a,"longest block"); split(a[2],b," "); v=b[1]+0; name=a[1]; gsub(/ +$/,"",name); if (v>m) {m=v; s=name}; if (v>100) over=over sprintf("%s %.1f; ",name,v)} /^open/ {split($0,a,"longest block"); split(a[2],b," "); o=b[1]; match($0,/call [0-9.]+ s/); oc=substr($0,RSTART,RLENGTH)} END {printf "%s: max after open %.1f ms (%s); over 100: %s open block %s ms, %s\n",F,m,s,over,o,oc}' $f
done
for f in $Q/s256_*.log; do grep -A3 "^size  ours" $f | grep ours_b2_cli; grep "^256   ours_b2_cli\|^256   emsigma " $f; done
for f in $Q/e1024_*.log; do grep -A4 "read+pass process s" $f; done
