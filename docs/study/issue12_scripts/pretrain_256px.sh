#!/bin/bash
# issue 12, seventh session: CoMA pre-training on the demo pool at 256 px (8x8 units), batch 8: the same units per step (512) and steps (250) as the demo recipe (128 px, batch 32)
# usage: pretrain_256px.sh SEED [coma|mae]; then tools/analyze_checkpoint.py W/backbone.pth data/demo/coco/val2017 --size 224 --images 16 --coco data/demo/coco
cd "$(dirname "$0")/../../.."  # the repository root
mkdir -p work_dirs/res256
S=$1; ALGO=${2:-coma}; W=work_dirs/res256/${ALGO}_s$S
CFG=imagenet_configs/${ALGO}_dyvit-n_1xb32-coslr-20e_demo.py
OMP_NUM_THREADS=${THREADS:-2} .venv/bin/python tools/train.py $CFG --work-dir $W --cfg-options randomness.seed=$S model.mask_seed=$S \
  train_dataloader.batch_size=8 train_dataloader.dataset.pipeline.1.size=256 train_cfg.max_epochs=1 train_dataloader.dataset.data_root=data/demo/ \
  train_dataloader.dataset.data_prefix.img_path=pool > $W.log 2>&1
.venv/bin/python tools/convert_checkpoint.py $W/epoch_1.pth $W/backbone.pth >> $W.log 2>&1
