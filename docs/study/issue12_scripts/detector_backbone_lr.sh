#!/bin/bash
# Issue 12: the demo detector with a smaller backbone lr. Args: MULT INIT SEED
cd "$(dirname "$0")/../../.."  # the repository root
export OMP_NUM_THREADS=1
mult=$1; init=$2; seed=$3
CFG=mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py
ROOT=data/demo/coco
ANN=$ROOT/annotations/instances_val2017.json
wd=work_dirs/detlr/bbmult$mult/seed$seed/det-$init
mkdir -p $wd
opts="train_dataloader.dataset.data_root=$ROOT val_dataloader.dataset.data_root=$ROOT test_dataloader.dataset.data_root=$ROOT randomness.seed=$seed train_cfg.val_begin=1000000000 val_evaluator.ann_file=$ANN test_evaluator.ann_file=$ANN optim_wrapper.paramwise_cfg.backbone_lr_mult=$mult"
[ $init != scratch ] && opts="$opts model.backbone.init_cfg.checkpoint=work_dirs/demo12b/seed$seed/dyvit_${init}_backbone.pth"
.venv/bin/python tools/train.py $CFG --work-dir $wd --cfg-options $opts > $wd.train.log 2>&1 || { echo "train failed $wd"; exit 1; }
ck=$(cat $wd/last_checkpoint)
.venv/bin/python tools/test.py $CFG $ck --work-dir $wd/test --cfg-options $opts > $wd.test.log 2>&1 || { echo "test failed $wd"; exit 1; }
echo "[$(date +%T)] backbone_lr_mult $mult init $init seed $seed: $(grep -h 'coco/bbox_mAP' $wd.test.log | tail -1 | grep -o 'coco/bbox_mAP: [0-9.]*\|coco/segm_mAP: [0-9.]*' | tr '\n' ' ')"
