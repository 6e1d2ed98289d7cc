"""Issue 12, sixth session (arguments ninth): attention entropy, logit spread and gate of stages 2-3 of study
checkpoints (coma.diagnosis.diagnose; 16 scikit-image photos at 224x224). Run from the repository root:

    python docs/study/issue12_scripts/attention_by_budget.py [WORK_DIR NAME ...]

NAME: a run folder of WORK_DIR such as coma_s0_e16 (its seed sets the fresh init compared against);
default: the sixth session's seed-0 checkpoints in work_dirs/study_latentfix."""
import json
import sys

from coma.diagnosis import diagnose, downstream_dyvit, load_image_batch

work = sys.argv[1] if len(sys.argv) > 1 else 'work_dirs/study_latentfix'
names = sys.argv[2:] or ['random_s0_e0', 'coma_s0_e2', 'coma_s0_e8', 'coma_s0_e16', 'mae_s0_e16']
images = load_image_batch(None, 16, 224)
for name in names:
    seed = int(name.split('_s')[1].split('_')[0])
    ck = json.load(open(f'{work}/{name}/pretrain.json'))['value']
    net = downstream_dyvit(ck, 'nano', seed); fresh = downstream_dyvit(None, 'nano', seed)
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
