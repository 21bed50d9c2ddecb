# UperNet + UTA-L/14 on ADE20K, 512x512 (Table 4, ADE20K mIoU: UTA L 58.8).
# Model parts, data pipeline and runtime are inherited from the INSTALLED mmsegmentation's own configs
# (`mmseg::` = mmseg/.mim/configs); only the backbone and the App. A.1 numbers are set here.
# Train:  uta-bench train seg --recipe upernet_uta_l14_ade20k --data-root $ADE/ADEChallengeData2016
#         (multi-GPU: torchrun --nproc_per_node 8 -m uta_bench train seg ... --launcher pytorch)
_base_ = [
    'mmseg::_base_/models/upernet_beit.py',      # UPerHead (pool 1,2,3,6) + FCNHead aux (w 0.4) + Feature2Pyramid
    'mmseg::_base_/datasets/ade20k.py',          # ADE20KDataset, reduce_zero_label, 512 crops, resize (2048, 512)
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',  # loops/hooks; iterations, optimizer, schedule overridden below
]
custom_imports = dict(imports=['uta_bench.seg.mmseg_modules'], allow_failed_imports=False)

crop_size = (512, 512)                           # App. A.1 / Table 4 "Input Size" 512
embed_dim = 1024
data_preprocessor = dict(
    size=crop_size,
    # the tower's normalisation (OpenAI CLIP mean/std, registry.OPENAI_CLIP_MEAN/STD) x 255
    mean=[122.770938, 116.7460125, 104.09373615], std=[68.5005327, 66.6321579, 70.32316305])
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True, type='UTAEvaSeg', model='uta_l14', checkpoint=None, pretrained=True,
        img_size=512, patch_size=16,                 # patch-14 kernel resampled to 16 (EVA psz14to16): 32x32 grid
        drop_path_rate=0.2,                      # App. A.1: drop path 0.2 (L)
        out_indices=(7, 11, 15, 23)),            # 4 blocks over depth, as mmseg's BEiT-L / EVA-02 (L)
    neck=dict(embed_dim=embed_dim, rescales=[4, 2, 1, 0.5]),   # strides 4/8/16/32
    decode_head=dict(in_channels=[embed_dim] * 4, channels=embed_dim, num_classes=150),
    auxiliary_head=dict(in_channels=embed_dim, num_classes=150),
    # single-scale evaluation as the paper reports; 512 windows, stride 341 as mmseg's 512 px ViT configs
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW',
                   lr=4e-5,                      # App. A.1: lr 4e-5 (L)
                   betas=(0.9, 0.999),
                   weight_decay=0.05),           # mmseg BEiT/MAE UperNet configs (not stated in the paper)
    constructor='UTASegLayerDecayConstructor',
    paramwise_cfg=dict(decay_rate=0.9))          # App. A.1: layer-wise decay 0.9 (L)

max_iters = 60000                                # App. A.1: 60k iterations
param_scheduler = [
    # warm-up 1500 iters + linear (poly power 1) decay: mmseg's BEiT UperNet schedule (not in the paper)
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, begin=1500, end=max_iters, eta_min=0.0, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=6000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6000, max_keep_ckpts=2))
# App. A.1: batch size 32 = 8 GPUs x 4 images
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
val_evaluator = [dict(type='UTASegMetric'), dict(type='IoUMetric', iou_metrics=['mIoU'])]
test_evaluator = val_evaluator
