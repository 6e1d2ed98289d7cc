"""Issue 12: which trained parts make the late stages spatially uniform? Put one kind of backbone tensor of the
demo CoMA checkpoint (seed 0) back to its exact initial value (the pre-training Runner rebuilt and initialised
with its seed) and save a backbone for tools/analyze_checkpoint.py."""
import sys
import torch
from mmengine.config import Config
from mmengine.runner import Runner
import coma  # noqa: F401

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
cfg = Config.fromfile(f'work_dirs/demo12b/seed{seed}/pretrain/coma_dyvit-n_1xb32-coslr-20e_demo.py')
cfg.work_dir = f'/tmp/parts_wd{seed}'
runner = Runner.from_cfg(cfg)
runner._init_model_weights()
init = {k[len('backbone.'):]: v for k, v in runner.model.state_dict().items() if k.startswith('backbone.')}
ck = torch.load(f'work_dirs/demo12b/seed{seed}/dyvit_coma_backbone.pth', map_location='cpu', weights_only=True)
sd = ck.get('state_dict', ck)
kinds = {
    'biases': lambda k, v: k.endswith('.bias') and 'norm' not in k.split('.')[-2],
    'norms': lambda k, v: 'norm' in k.split('.')[-2],
    'matrices': lambda k, v: v.ndim == 2 and 'bias_table' not in k,
    'stage3': lambda k, v: k.startswith('stages.3.') or k.startswith('norm3'),
    'stage2': lambda k, v: k.startswith('stages.2.'),
    'attn_qkv': lambda k, v: v.ndim == 2 and any(f'.attn.{n}.' in k for n in ('q', 'kv_fine', 'kv_coarse')),
    'attn_proj': lambda k, v: v.ndim == 2 and '.attn.proj.' in k,
    'mlp': lambda k, v: v.ndim == 2 and '.mlp.' in k,
    'merging': lambda k, v: v.ndim == 2 and '.downsample.' in k,
}
only = sys.argv[2:]  # names of kinds to write (default: all)
kinds = {k: f for k, f in kinds.items() if not only or k in only}
for name, pick in kinds.items():
    new = dict(sd)
    keys = [k for k, v in sd.items() if k in init and pick(k, v)]
    for k in keys:
        new[k] = init[k].clone()
    torch.save(dict(ck, state_dict=new) if 'state_dict' in ck else new, f'work_dirs/gatereset/parts_{name}_seed{seed}.pth')
    print(name, len(keys), 'tensors put back')
