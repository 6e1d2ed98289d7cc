#!/bin/bash
# The committed code (proj/MLP packed only under autocast or off the CPU) against old 3360a24, interleaved 3 times,
# one process per measurement, nothing else running; then the anchored backbone run and the step op counts.
cd /work/main
for i in 1 2 3; do
  for v in old new; do
    if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
    for am in "tiny fwd" "tiny masked" "base fwd" "base masked" "base train"; do
      echo "$v $i $am $(cd $P && PYTHONPATH=$P /work/main/.venv/bin/python /work/main/docs/cpu/ab8/micro.py $am)"
    done
  done
done > docs/cpu/ab8/micro3.log 2>&1
.venv/bin/python tools/benchmark_backbone.py --batch 8 --repeats 5 --models dyvit_tiny dyvit_base vit_base_patch16_224 \
  swin_tiny_patch4_window7_224 hiera_tiny_224 hiera_base_224 --skip-detection-size --note "nothing else running" \
  --json docs/cpu/backbone_s8.json > docs/cpu/ab8/backbone_s8.log 2>&1
for v in old new; do
  if [ $v = old ]; then P=/tmp/old; else P=/work/main; fi
  echo "== $v"; (cd $P && PYTHONPATH=$P /work/main/.venv/bin/python /work/main/docs/cpu/ab8/step_ops.py)
done > docs/cpu/ab8/step_ops.log 2>&1
