#!/bin/bash
# Issue 12: does the gate shift make the late stages spatially uniform? Reset every DM-MSA gate of the demo
# CoMA / MAE backbones to its init (zeros: 0.5 / 0.5) and measure spatial variation and the dense probe again.
cd "$(dirname "$0")/../../.."  # the repository root
export OMP_NUM_THREADS=1
for m in coma mae; do for s in 0 1 2; do
  mkdir -p work_dirs/gatereset; out=work_dirs/gatereset/${m}_seed$s.pth
  .venv/bin/python - "$m" "$s" "$out" <<'PY'
import sys, torch
m, s, out = sys.argv[1:]
ck = torch.load(f'work_dirs/demo12b/seed{s}/dyvit_{m}_backbone.pth', map_location='cpu', weights_only=True)
sd = ck.get('state_dict', ck)
n = 0
for k in sd:
    if '.attn.gate.' in k:
        sd[k] = torch.zeros_like(sd[k]); n += 1
torch.save(ck, out)
print(f'{out}: {n} gate tensors reset')
PY
  .venv/bin/python tools/analyze_checkpoint.py $out data/demo/coco/val2017 --size 224 --images 16 --coco data/demo/coco --seed $s \
      --out work_dirs/gatereset/an_${m}_seed$s 2>&1 | grep -E "^spatial_variation|^dense_probe"
done; done
