#!/usr/bin/env bash
# The one command for a lent GPU machine (H100/H200 image: torch 2.11 or newer, timm, triton; no
# network, no OpenMMLab package): at most 8 minutes, nothing else may run beside it.
#
#   here, once:   bash tools/gpu_wheels.sh         # the pure-Python wheels into .whl/ (git-ignored)
#   device call:  carry [".whl"], command "bash tools/gpu_speed.sh", timeout_s 540
#
# Installs the wheels, prints the GPU and the versions, then runs tools/gpu_run.py: a smoke stage (one
# CoMA DyViT-B and one MAE ViT-B/16 training step, eager bf16, math SDPA backend off, the kernel contract
# checked; DM-MSA on CUDA against the CPU), then the pre-training and backbone rows in priority order,
# each in its own process under a hard limit (compilation included), the JSON rewritten after each row.
# Outputs in $OUT (default work_dirs/gpu): gpu.txt, gpu_run.json, gpu_run.md; copy them to docs/gpu/.
#
# REHEARSE=1 runs the same rows on this machine's CPU (batch 2, one repeat, limits and budget x3), in an
# environment like the device image (see docs/benchmarks.md): what the rehearsal cannot show is what
# only a GPU enforces, which tests/models/test_kernel_contract.py checks.
#   PY=/tmp/gpuenv/bin/python REHEARSE=1 bash tools/gpu_speed.sh
set -u
OUT=${OUT:-work_dirs/gpu}
PY=${PY:-python3}
BUDGET_S=${BUDGET_S:-450}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
if [ "${REHEARSE:-0}" = 1 ]; then
  extra=(--rehearse)
else
  extra=(--device cuda)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
$PY -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
$PY tools/gpu_run.py --out "$OUT" --budget-s "$BUDGET_S" "${extra[@]}" 2>&1 | grep --line-buffered -v Warning
echo "gpu_speed.sh: $(( $(date +%s) - start )) s"
