#!/bin/bash
# issue 12, sixth session: does a longer fine-tune (16 epochs instead of 4) let the 8-epoch pre-training show?
cd "$(dirname "$0")/../../.."  # the repository root
# needs work_dirs/ft16/<run>/{pretrain,linprobe}.json copied from work_dirs/study_latentfix (the 8-epoch runs and random init)
W=work_dirs/ft16
( time OMP_NUM_THREADS=1 .venv/bin/python tools/study_efficiency.py --seeds 0 1 2 --jobs 2 --budgets 8 --ft-epochs 16 \
  --work-dir $W --data-root work_dirs/study_latentfix/data --results $W/table.md ) > $W/log.txt 2>&1
