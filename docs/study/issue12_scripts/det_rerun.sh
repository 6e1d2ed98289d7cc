#!/bin/bash
# issue 12, eleventh session: the demo's Mask R-CNN stage again from latent_long.sh's backbone NAME_sS,
# into det_rerun/ (is a detector run from a fixed backbone and seed reproducible?)
# usage: det_rerun.sh NAME S   -> work_dirs/latent_long/NAME_sS/det_rerun/metrics.json
cd "$(dirname "$0")/../../.."  # the repository root
N=$1; S=$2; W=work_dirs/latent_long/${N}_s$S; R=data/demo/coco; D=$W/det_rerun
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
CFG=mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py
OPTS="train_dataloader.dataset.data_root=$R val_dataloader.dataset.data_root=$R test_dataloader.dataset.data_root=$R randomness.seed=$S
 train_cfg.val_begin=1000000000 val_evaluator.ann_file=$R/annotations/instances_val2017.json test_evaluator.ann_file=$R/annotations/instances_val2017.json
 model.backbone.init_cfg.checkpoint=$W/backbone.pth"
set -e
$PY tools/train.py $CFG --work-dir $D --cfg-options $OPTS > $W/det_rerun_train.log 2>&1
$PY tools/test.py $CFG $(cat $D/last_checkpoint) --work-dir $D/test --cfg-options $OPTS > $W/det_rerun_test.log 2>&1
$PY -c "import json; from coma.analysis.report import latest_metrics; json.dump(latest_metrics('$D/test'), open('$D/metrics.json', 'w'))"
echo "$N seed $S rerun: $(cat $D/metrics.json)"
