#!/bin/bash
# 4 more alternations of the dense forwards, old 3360a24 (/tmp/old) against the working tree; output micro4.log.
cd /work/main
for i in 1 2 3 4; do for v in old new; do
  if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
  for am in "tiny fwd" "base fwd"; do
    echo "$v $i $am $(cd $P && PYTHONPATH=$P /work/main/.venv/bin/python /work/main/docs/cpu/ab8/micro.py $am)"
  done
done; done > docs/cpu/ab8/micro4.log 2>&1
