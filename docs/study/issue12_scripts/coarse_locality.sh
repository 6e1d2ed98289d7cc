#!/bin/bash
# issue 12, sixth session: the coarse locality prior at init (coarse_locality=1.0) in pre-training and fine-tune; CoMA 8 epochs and random init, 3 seeds
cd "$(dirname "$0")/../../.."  # the repository root
W=work_dirs/study_locality
( time OMP_NUM_THREADS=1 .venv/bin/python tools/study_efficiency.py --methods coma random --seeds 0 1 2 --jobs 2 --budgets 8 \
  --work-dir $W --data-root work_dirs/study_latentfix/data --pretrain-options model.backbone.coarse_locality=1.0 \
  --ft-options model.backbone.coarse_locality=1.0 --results $W/table.md ) > $W/log.txt 2>&1
