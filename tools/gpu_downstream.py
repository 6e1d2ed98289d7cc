"""A few Mask R-CNN and UperNet training iterations with DyViT-T on a GPU (float16 AMP).

    python tools/gpu_downstream.py [--iters 6]

Uses the project's own configs (mmdet_configs/, mmseg_configs/) and mmcv's compiled CUDA ops
(RoIAlign, NMS); inputs are mmdet's/mmseg's synthetic batches at full training size.
"""
import argparse
import json
import time

import torch


def timed_steps(model, batch_fn, iters):
    from mmengine.optim import build_optim_wrapper
    # float16 AMP with loss scaling on CUDA (mmcv's ops take float16); float32 on CPU
    optim = build_optim_wrapper(model, dict(type='AutoAmpOptimWrapper', dtype='float16', cpu_dtype=None,
                                            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)))
    times, losses = [], []
    for _ in range(iters):
        data = batch_fn()
        sync()
        start = time.perf_counter()
        log = model.train_step(data, optim)
        sync()
        times.append(time.perf_counter() - start)
        losses.append(float(log['loss']))
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else None
    return dict(s_per_iter_median=sorted(times[1:])[len(times[1:]) // 2], losses=losses, peak_gib=peak)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=6)
    p.add_argument('--json')
    p.add_argument('--device', default='cuda')
    p.add_argument('--small', action='store_true', help='small inputs (a CPU smoke run of this script)')
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    det_shapes = [(3, 160, 224), (3, 128, 192)] if args.small else [(3, 800, 1216), (3, 800, 1088)]
    seg_size, seg_batch_size = (128, 2) if args.small else (512, 8)
    import coma  # noqa: F401
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmcv.ops import RoIAlign, nms
    out = dict(device=torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu')
    boxes = torch.rand(100, 4, device=dev) * 100
    boxes[:, 2:] += boxes[:, :2]
    out['mmcv_cuda_nms_kept'] = int(nms(boxes, torch.rand(100, device=dev), 0.5)[1].numel())
    feats = torch.randn(1, 8, 32, 32, device=dev)
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 20.0]], device=dev)
    out['mmcv_cuda_roi_align_shape'] = list(RoIAlign((7, 7), 1.0, 2)(feats, rois).shape)

    init_default_scope('mmdet')
    from mmdet.registry import MODELS as DET
    from mmdet.testing import demo_mm_inputs
    cfg = Config.fromfile('mmdet_configs/dyvit/mask-rcnn_dyvit-t_fpn_1x_coco.py')
    det = DET.build(cfg.model).to(dev).train()
    det.init_weights()
    batch = lambda: demo_mm_inputs(2, det_shapes, num_classes=80, with_mask=True)  # noqa: E731
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    out[f'mask_rcnn_dyvit_t_2x{det_shapes[0][1]}x{det_shapes[0][2]}'] = timed_steps(det, batch, args.iters)
    del det

    init_default_scope('mmseg')
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS as SEG
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile('mmseg_configs/dyvit/upernet_dyvit-t_8xb2-160k_ade20k-512x512.py')
    seg = revert_sync_batchnorm(SEG.build(cfg.model)).to(dev).train()
    seg.init_weights()

    def seg_batch():
        samples = []
        n, size = seg_batch_size, (seg_size, seg_size)
        for _ in range(n):
            s = SegDataSample(metainfo=dict(img_shape=size, pad_shape=size, ori_shape=size))
            s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, *size)))
            samples.append(s)
        return dict(inputs=[torch.randint(0, 255, (3, *size), dtype=torch.uint8) for _ in range(n)],
                    data_samples=samples)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    out[f'upernet_dyvit_t_{seg_batch_size}x{seg_size}x{seg_size}'] = timed_steps(seg, seg_batch, args.iters)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
