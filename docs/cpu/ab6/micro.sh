#!/bin/bash
# old vs new, interleaved 8 times, one process per measurement, nothing else running.
# old = git worktree add /tmp/old 7641347 (before the per-head gate); new = 53804ce. Output: micro.log
cd /work/main
for i in 1 2 3 4 5 6 7 8; do
  for v in old new; do
    if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
    for am in "tiny fwd" "tiny masked" "base fwd" "base masked"; do
      echo "$v $i $am $(PYTHONPATH=$P .venv/bin/python docs/cpu/ab6/micro.py $am)"
    done
  done
done
