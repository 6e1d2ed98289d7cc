#!/usr/bin/env bash
# Issue 11's GPU measurements, as one script for a lent GPU machine (about 8 minutes; nothing else
# may run beside it: a build on the same CPUs slows the launch-bound eager rows several-fold).
# Needs only torch, timm and the pure-Python wheels in .whl/ (mmengine, mmcv-lite, addict, yapf,
# termcolor, platformdirs). Outputs go to $OUT (default work_dirs/gpu):
#   1. DM-MSA equivalence and compile tests on CUDA (float32, TF32 off);
#   2. backbones, bf16, batch 128, eager and compiled side by side, with the anchors;
#   3. one pre-training step: CoMA on DyViT-B vs MAE on ViT-B/16 at 0.75 and 0.6, eager and compiled.
set -u
OUT=${OUT:-work_dirs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
timeout 90 python3 tools/check_dmmsa_cuda.py 2>&1 | tee "$OUT/equivalence_cuda.txt" | tail -15
timeout 240 python3 tools/benchmark_backbone.py --device cuda --amp --batch 128 --repeats 10 --skip-detection-size \
  --compile --modes fwd masked --note "gpu_speed.sh, nothing else running" \
  --models dyvit_base vit_base_patch16_224 hiera_base_224 hiera_tiny_224 swin_tiny_patch4_window7_224 \
  --json "$OUT/backbone_gpu.json" 2>&1 | grep -v Warning | tail -25
timeout 150 python3 tools/benchmark_pretrain.py --device cuda --amp --batch 128 --repeats 10 --compile \
  --settings coma_dyvit-b_r0.6 mae_vit-b-p16_r0.75 mae_vit-b-p16_r0.6 --note "gpu_speed.sh, nothing else running" \
  --json "$OUT/pretrain_gpu.json" 2>&1 | grep -v Warning | tail -30
python3 tools/bench_report.py "$OUT/backbone_gpu.json" "$OUT/pretrain_gpu.json" > "$OUT/tables.md" 2>&1
