#!/usr/bin/env bash
# Issue 11's GPU measurements, as one script for a lent GPU machine (at most 8 minutes; nothing else
# may run beside it: a build on the same CPUs slows the launch-bound eager rows several-fold).
# Needs only torch, timm and the pure-Python wheels that `bash tools/gpu_wheels.sh` puts in .whl/
# (carry `.whl`). Outputs go to $OUT (default work_dirs/gpu); every JSON is rewritten after each
# row, so a step stopped by its time limit keeps the rows it finished. In the order of the targets:
#   1. backbones, bf16, batch 128: DyViT-B, ViT-B/16 and Hiera-B (dense; DyViT-B and Hiera-B masked),
#      all eager rows, then all compiled (compiled against compiled);
#   2. one pre-training step: CoMA on DyViT-B vs MAE on ViT-B/16 at 0.75 and 0.6, eager then compiled;
#   3. the other anchors and DyViT-T (Swin-T, Hiera-T), eager;
#   4. DM-MSA on CUDA against the CPU (float32, TF32 off), fused SDPA kernels only (the fullgraph
#      compilation is step 1's compiled rows; `python tools/check_dmmsa_cuda.py` alone also compares them).
# A compilation may take minutes (on 2 CPU cores: DyViT-B's forward 104 s, its masked forward 74 s,
# a CoMA step 520 s; on the device, unknown): a row past its limit (ROW_S, default 100 s) is reported
# as an error and the next one runs. The machine stays warm 30 s after a call: to give such rows more
# time, call again at once with, e.g., STEPS=pretrain ROW_S=300 STEP_S=400 (STEPS: any of backbone
# pretrain small check, all four by default, about 8 minutes at most; STEP_S: each step's limit).
#
# REHEARSE=1 runs the same steps on the CPU (batch 2, one repeat; step 4 imports only), to check here, in
# an environment like the device image (torch and timm, no mmcv build), that nothing fails to import
# or compile before device time is spent: PY=/path/to/python REHEARSE=1 bash tools/gpu_speed.sh
set -u
OUT=${OUT:-work_dirs/gpu}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
if [ "${REHEARSE:-0}" = 1 ]; then
  dev=(--device cpu --amp --batch 2 --repeats 1); scale=4  # CPU compilation is slower: 4x the time limits
else
  dev=(--device cuda --amp --batch 128 --repeats 10); scale=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
$PY -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
note="gpu_speed.sh, nothing else running"
steps=${STEPS:-backbone pretrain small check}
row=$((${ROW_S:-100} * scale))
show() { grep -v Warning | cut -c1-400 | tail -${1}; }
if [[ " $steps " == *" backbone "* ]]; then
  timeout $((${STEP_S:-200} * scale)) $PY tools/benchmark_backbone.py "${dev[@]}" --skip-detection-size --compile --modes fwd masked \
    --row-timeout $row --models dyvit_base vit_base_patch16_224 hiera_base_224 --note "$note" \
    --json "$OUT/backbone_gpu.json" 2>&1 | show 14
fi
if [[ " $steps " == *" pretrain "* ]]; then
  timeout $((${STEP_S:-190} * scale)) $PY tools/benchmark_pretrain.py "${dev[@]}" --compile --row-timeout $row \
    --settings coma_dyvit-b_r0.6 mae_vit-b-p16_r0.75 mae_vit-b-p16_r0.6 --note "$note" \
    --json "$OUT/pretrain_gpu.json" 2>&1 | show 12
fi
if [[ " $steps " == *" small "* ]]; then
  timeout $((35 * scale)) $PY tools/benchmark_backbone.py "${dev[@]}" --skip-detection-size --modes fwd masked \
    --models dyvit_tiny swin_tiny_patch4_window7_224 hiera_tiny_224 --note "$note" \
    --json "$OUT/backbone_small_gpu.json" 2>&1 | show 8
fi
if [[ " $steps " == *" check "* ]]; then
  if [ "${REHEARSE:-0}" = 1 ]; then  # no CUDA here: its imports only
    $PY tools/check_dmmsa_cuda.py --help > /dev/null && echo "check_dmmsa_cuda.py imports: OK"
  else
    timeout 35 $PY tools/check_dmmsa_cuda.py --skip-compile 2>&1 | tee "$OUT/equivalence_cuda.txt" | tail -12
  fi
fi
$PY tools/bench_report.py $(ls "$OUT"/backbone_gpu.json "$OUT"/pretrain_gpu.json "$OUT"/backbone_small_gpu.json \
  2>/dev/null) > "$OUT/tables.md" 2>&1
