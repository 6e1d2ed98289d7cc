#!/usr/bin/env bash
# The downstream GPU path (Mask R-CNN and UperNet with mmcv's compiled CUDA ops), as one script for a
# lent GPU machine (no network there). Fetch its wheels here first: `bash tools/gpu_wheels.sh --downstream`
# (mmengine, mmdet, mmseg, their small deps and mmcv's source in .whl/), then carry `.whl`.
# Outputs go to $OUT (default work_dirs/gpu):
#   1. builds mmcv 2.1.0's CUDA ops (C++20 patch, sm_90; about 5 minutes with 12 jobs), with nothing
#      else running: a measurement beside a build is wrong (docs/benchmarks.md: the 1.36x);
#   2. then a few timed Mask R-CNN and UperNet iterations with those ops.
# Speed measurements are tools/gpu_speed.sh's, a call of their own.
set -u
OUT=${OUT:-work_dirs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
# mmcv-lite is gpu_speed.sh's; here the mmcv built in place takes its name
wheels=$(ls .whl/*.whl | grep -v mmcv_lite)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $wheels || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
(
  mkdir -p /tmp/mmcvb && tar xzf .whl/mmcv-2.1.0.tar.gz -C /tmp/mmcvb && cd /tmp/mmcvb/mmcv-2.1.0 &&
  sed -i 's/-std=c++17/-std=c++20/g' setup.py &&
  MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${MAX_JOBS:-12} \
    timeout ${BUILD_BUDGET_S:-420} python3 setup.py build_ext --inplace
  echo "build rc=$? after $(( $(date +%s) - start )) s"
) > "$OUT/mmcv_build.log" 2>&1
tail -3 "$OUT/mmcv_build.log"
if grep -q "build rc=0" "$OUT/mmcv_build.log"; then
  PYTHONPATH=/tmp/mmcvb/mmcv-2.1.0:$PYTHONPATH timeout ${DOWNSTREAM_S:-120} python3 tools/gpu_downstream.py \
    --json "$OUT/downstream_gpu.json" 2>&1 | grep -v Warning | tail -30
else
  echo "mmcv CUDA build did not finish within ${BUILD_BUDGET_S:-420} s; $(grep -c 'Compiling\|nvcc' "$OUT/mmcv_build.log") compile lines"
fi
