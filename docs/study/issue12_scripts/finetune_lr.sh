#!/bin/bash
# fine-tune lr sweep (issue 12): CoMA/MAE 8-epoch checkpoints and random init, 3 seeds, light 4-epoch fine-tune
cd "$(dirname "$0")/../../.."  # the repository root
for lr in 6.25e-5 2.5e-4; do
  W=work_dirs/ftlr_$lr
  OMP_NUM_THREADS=1 .venv/bin/python tools/study_efficiency.py --seeds 0 1 2 --jobs 2 --budgets 8 --work-dir $W \
    --data-root work_dirs/study_latentfix/data --ft-options optim_wrapper.optimizer.lr=$lr --results $W/table.md
done
