#!/bin/bash
# The demo-long CoMA pre-training (1,984 steps on the demo pool) with extra
# model options, then the 30-second screen of tools/analyze_checkpoint.py and the demo's Mask R-CNN
# stage (seed S), one thread each.
# usage: [CFG=PRETRAIN_CONFIG] long_pretrain_then_detect.sh NAME S [CFG-OPTION ...]   e.g. long_pretrain_then_detect.sh lat0.1 0 model.latent_head.loss_weight=0.1
#   (CFG defaults to the CoMA demo-long config; CFG=imagenet_configs/mae_dyvit-n_1xb32-coslr-32e_demo.py for MAE)
#   -> work_dirs/latent_long/NAME_sS/{backbone.pth, analysis/diagnosis.json, det/metrics.json}
cd "$(dirname "$0")/../../.."  # the repository root
N=$1; S=$2; shift 2; W=work_dirs/latent_long/${N}_s$S
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
mkdir -p $W
set -e
$PY tools/train.py ${CFG:-imagenet_configs/coma_dyvit-n_1xb32-coslr-32e_demo.py} --work-dir $W/pretrain --cfg-options \
  train_dataloader.dataset.data_root=data/demo train_dataloader.dataset.data_prefix.img_path=pool \
  randomness.seed=$S model.mask_seed=$S "$@" > $W/pretrain.log 2>&1
$PY tools/convert_checkpoint.py $W/pretrain/epoch_32.pth $W/backbone.pth >> $W/pretrain.log 2>&1
$PY tools/analyze_checkpoint.py $W/backbone.pth data/demo/coco/val2017 --arch nano --size 224 --images 16 --seed $S \
  --coco data/demo/coco --out $W/analysis > $W/analysis.log 2>&1
OUT=$W/det PY=$PY bash docs/study/scripts/detect_from_backbone.sh $N $S $W/backbone.pth
echo "$N seed $S done: $(cat $W/det/metrics.json)"
