#!/bin/bash
# old vs new, interleaved 4 times, one process per measurement, nothing else running.
# old = git worktree add /tmp/old 3360a24 (before the eighth session's weight packing); new = the working tree.
# micro.log: first run (proj/MLP packed in float32 training too); micro2.log: the committed code (packed only under
# autocast or without autograd).
# micro.py is the measured process (median of 7 calls, batch 8, 224x224, 2 threads). Output: micro.log
cd /work/main
for i in 1 2 3 4; do
  for v in old new; do
    if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
    for am in "tiny fwd" "tiny masked" "tiny train" "base fwd" "base masked" "base train"; do
      echo "$v $i $am $(cd $P && PYTHONPATH=$P /work/main/.venv/bin/python /work/main/docs/cpu/ab8/micro.py $am)"
    done
  done
done
