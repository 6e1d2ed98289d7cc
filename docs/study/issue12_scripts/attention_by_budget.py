"""Issue 12, sixth session: attention entropy, logit spread and gate of stages 2-3 of the seed-0 study checkpoints
(coma.diagnosis.diagnose; 16 scikit-image photos at 224x224). Run from the repository root."""
import json
from coma.diagnosis import diagnose, load_image_batch
from coma.diagnosis import downstream_dyvit
images = load_image_batch(None, 16, 224)
for name in ['random_s0_e0', 'coma_s0_e2', 'coma_s0_e8', 'coma_s0_e16', 'mae_s0_e16']:
    ck = json.load(open(f'work_dirs/study_latentfix/{name}/pretrain.json'))['value']
    net = downstream_dyvit(ck, 'nano', 0); fresh = downstream_dyvit(None, 'nano', 0)
    blocks, summary = diagnose(net, fresh, images)
    out = []
    for st in (2, 3):
        rows = [b for b in blocks if b['stage'] == st]
        ec = sum(b['entropy_coarse'] for b in rows) / len(rows)
        ef = sum(b.get('entropy_fine', float('nan')) for b in rows) / len(rows)
        lc = sum(b['logit_std_coarse'] for b in rows) / len(rows)
        g = sum(b['gate_coarse'] for b in rows) / len(rows)
        out.append(f'stage {st}: coarse entropy {ec:.3f} (logit std {lc:.2f}), fine entropy {ef:.3f}, coarse gate {g:.3f}')
    print(name, ' | '.join(out), flush=True)
