#!/bin/bash
# issue 12, seventh session: one-seed screens at 256 px (pretrain_256px.sh's setup: 256 px, batch 8, 250 steps, seed 0) of levers on the late-stage spatial collapse
cd "$(dirname "$0")/../../.."  # the repository root
mkdir -p work_dirs/res256
screen() {  # NAME OPTIONS...
  N=$1; shift; W=work_dirs/res256/screen_$N
  OMP_NUM_THREADS=2 .venv/bin/python tools/train.py imagenet_configs/coma_dyvit-n_1xb32-coslr-20e_demo.py --work-dir $W --cfg-options randomness.seed=0 model.mask_seed=0 \
    train_dataloader.batch_size=8 train_dataloader.dataset.pipeline.1.size=256 train_cfg.max_epochs=1 "$@" > $W.log 2>&1
  .venv/bin/python tools/convert_checkpoint.py $W/epoch_1.pth $W/backbone.pth >> $W.log 2>&1
  OMP_NUM_THREADS=2 .venv/bin/python tools/analyze_checkpoint.py $W/backbone.pth data/demo/coco/val2017 --size 224 --images 16 --coco data/demo/coco --out $W/an > $W.an.log 2>&1
}
screen lat3 model.lambda_lat=3.0
screen dec4 model.decoder.depth=4
screen mr04 model.mask_ratio=0.4
screen lat10 model.lambda_lat=10.0
