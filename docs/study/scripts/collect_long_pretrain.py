"""Gathers long_pretrain_then_detect.sh's runs into one JSON (detector metrics, the segmenter metrics
where a run has them, the diagnosis summary, the last logged pre-training losses).
usage: python docs/study/scripts/collect_long_pretrain.py OUT.json [work_dirs/latent_long]
Runs already in OUT.json and absent from the work directory (an earlier machine's) are kept."""
import glob
import json
import os
import re
import sys

root = sys.argv[2] if len(sys.argv) > 2 else 'work_dirs/latent_long'
runs = json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else {}
for w in sorted(d for d in glob.glob(os.path.join(root, '*_s*')) if os.path.isdir(d)):
    run = {}
    det, diag = os.path.join(w, 'det', 'metrics.json'), os.path.join(w, 'analysis', 'diagnosis.json')
    if os.path.exists(det):
        run['det'] = json.load(open(det))
    seg = glob.glob(os.path.join(w, 'demo', 'seed*', 'seg-coma_metrics.json'))
    if seg:
        run['seg'] = json.load(open(seg[0]))
    if os.path.exists(diag):
        run['diagnosis'] = json.load(open(diag))['summary']
    log = os.path.join(w, 'pretrain.log')  # none for a detector from scratch
    lines = [ln for ln in open(log) if 'loss_pix' in ln and 'Epoch(train)' in ln] if os.path.exists(log) else []
    if lines:
        run['last_log'] = {k: float(v) for k, v in re.findall(r'(loss\w*): ([\d.]+)', lines[-1])}
    runs[os.path.basename(w)] = run
json.dump(dict(sorted(runs.items())), open(sys.argv[1], 'w'), indent=1)
for name, run in runs.items():
    d, s = run.get('det', {}), run.get('diagnosis', {})
    print(name, {k: v for k, v in d.items() if k.endswith(('bbox_mAP', 'segm_mAP'))},
          [round(v, 2) for v in s.get('spatial_variation', [])], round(s.get('dense_probe', {}).get('miou', 0), 1),
          {k: round(v, 2) for k, v in run.get('seg', {}).items() if k.endswith('mIoU')}, run.get('last_log'))
