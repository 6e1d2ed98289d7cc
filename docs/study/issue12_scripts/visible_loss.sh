#!/bin/bash
# issue 12, sixth session: CoMA 8 epochs with the pixel loss on the visible units too (weight 1), 3 seeds
cd "$(dirname "$0")/../../.."  # the repository root
W=work_dirs/study_visloss
( time OMP_NUM_THREADS=1 .venv/bin/python tools/study_efficiency.py --methods coma --seeds 0 1 2 --jobs 2 --budgets 8 \
  --work-dir $W --data-root work_dirs/study_latentfix/data --pretrain-options model.visible_loss_weight=1.0 \
  --results $W/table.md ) > $W/log.txt 2>&1
