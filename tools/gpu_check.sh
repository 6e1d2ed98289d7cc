#!/usr/bin/env bash
# The GPU path, as one script for a lent GPU machine (no network there). It expects wheels in .whl/
# (mmengine, mmdet, mmseg and their small deps, mmcv's source, and mmcv-lite for the benchmarks while
# mmcv's CUDA ops build). Outputs go to $OUT (default work_dirs/gpu).
#   1. builds mmcv 2.1.0's CUDA ops (C++20 patch, sm_90) in the background;
#   2. backbone and pre-training benchmarks with bf16 AMP: CoMA on DyViT-B vs MAE on ViT-B/16, Hiera;
#   3. a few Mask R-CNN and UperNet iterations with the freshly built CUDA ops.
set -u
OUT=${OUT:-work_dirs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl .whl/lite/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
(
  mkdir -p /tmp/mmcvb && tar xzf .whl/mmcv-2.1.0.tar.gz -C /tmp/mmcvb && cd /tmp/mmcvb/mmcv-2.1.0 &&
  sed -i 's/-std=c++17/-std=c++20/g' setup.py &&
  MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${MAX_JOBS:-12} python3 setup.py build_ext --inplace
  echo "build rc=$? after $(( $(date +%s) - start )) s"
) > "$OUT/mmcv_build.log" 2>&1 &
build=$!
timeout 60 python3 tools/profile_backbone.py --arch base --batch 128 --amp --top 12 > "$OUT/profile_gpu.txt" 2>&1
timeout 150 python3 tools/benchmark_pretrain.py --device cuda --amp --batch 128 --repeats 10 ${PRETRAIN_SETTINGS:+--settings $PRETRAIN_SETTINGS} \
  --json "$OUT/pretrain_gpu.json" 2>&1 | grep -v Warning | tail -40
timeout 120 python3 tools/benchmark_backbone.py --device cuda --amp --batch 128 --repeats 10 --skip-detection-size \
  --models ${BACKBONE_MODELS:-dyvit_tiny dyvit_base swin_tiny_patch4_window7_224 vit_base_patch16_224 hiera_tiny_224 hiera_base_224} \
  --json "$OUT/backbone_gpu.json" 2>&1 | grep -v Warning | tail -25
deadline=$(( start + ${BUILD_BUDGET_S:-390} ))
while kill -0 $build 2>/dev/null && [ "$(date +%s)" -lt $deadline ]; do sleep 5; done
tail -3 "$OUT/mmcv_build.log"
if grep -q "build rc=0" "$OUT/mmcv_build.log"; then
  PYTHONPATH=/tmp/mmcvb/mmcv-2.1.0:$PYTHONPATH timeout ${DOWNSTREAM_S:-120} python3 tools/gpu_downstream.py --json "$OUT/downstream_gpu.json" 2>&1 | grep -v Warning | tail -30
else
  echo "mmcv CUDA build did not finish within the budget; $(grep -c 'Compiling\|nvcc' "$OUT/mmcv_build.log") compile lines"
  kill $build 2>/dev/null
fi
