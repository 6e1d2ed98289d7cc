#!/bin/bash
# old vs new, interleaved 6 times, one process per measurement, nothing else running.
# old = git worktree add /tmp/old 84c337c (before the seventh session's op cuts); new = 4656a35. Output: micro.log
# docs/cpu/ab6/micro.py is the measured process (median of 9 forwards, batch 8, 224x224, 2 threads).
cd /work/main
for i in 1 2 3 4 5 6; do
  for v in old new; do
    if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
    for am in "tiny fwd" "tiny masked" "base fwd" "base masked"; do
      echo "$v $i $am $(cd $P && PYTHONPATH=$P /work/main/.venv/bin/python /work/main/docs/cpu/ab6/micro.py $am)"
    done
  done
done
