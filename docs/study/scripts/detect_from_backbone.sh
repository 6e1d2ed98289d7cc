#!/bin/bash
# The demo's Mask R-CNN (DyViT-N, seed S) from a backbone B (or 'scratch'), as tools/demo.py's det stage runs it
# usage: [OUT=DIR] detect_from_backbone.sh NAME S B   -> work_dirs/det/NAME_sS/metrics.json (or DIR/metrics.json)
cd "$(dirname "$0")/../../.."  # the repository root
N=$1; S=$2; B=$3; W=${OUT:-work_dirs/det/${N}_s$S}; R=data/demo/coco
CFG=mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py
OPTS="train_dataloader.dataset.data_root=$R val_dataloader.dataset.data_root=$R test_dataloader.dataset.data_root=$R randomness.seed=$S
 train_cfg.val_begin=1000000000 val_evaluator.ann_file=$R/annotations/instances_val2017.json test_evaluator.ann_file=$R/annotations/instances_val2017.json"
[ "$B" != scratch ] && OPTS="$OPTS model.backbone.init_cfg.checkpoint=$B"
mkdir -p $W
export OMP_NUM_THREADS=1
${PY:-.venv/bin/python} tools/train.py $CFG --work-dir $W --cfg-options $OPTS > $W/train.log 2>&1
${PY:-.venv/bin/python} tools/test.py $CFG $(cat $W/last_checkpoint) --work-dir $W/test --cfg-options $OPTS > $W/test.log 2>&1
${PY:-.venv/bin/python} -c "import json, sys; from coma.analysis.report import latest_metrics; json.dump(latest_metrics('$W/test'), open('$W/metrics.json', 'w'))"
