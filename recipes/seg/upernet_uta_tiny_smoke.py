# CPU smoke run (not a paper setting): the tiny random-init UTA model, UperNet widths shrunk, 64 px crops on
# the generated ADE20K-layout sample (uta_bench.seg.ade.make_ade20k_sample). Everything else (heads,
# dataset class, reduce_zero_label, metrics, layer decay) comes from the B/16 recipe it inherits.
_base_ = ['./upernet_uta_b16_ade20k.py']
crop_size = (64, 64)
embed_dim = 64
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(model='uta_tiny', pretrained=False, img_size=64, drop_path_rate=0.1, out_indices=None),
    neck=dict(embed_dim=embed_dim, norm_cfg=dict(type='BN', requires_grad=True)),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=32, norm_cfg=dict(type='BN', requires_grad=True)),
    auxiliary_head=dict(in_channels=embed_dim, channels=16, norm_cfg=dict(type='BN', requires_grad=True)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(32, 32)))
smoke_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(192, 96), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
smoke_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(192, 96), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(decay_rate=0.9))
max_iters = 40
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, begin=5, end=max_iters, eta_min=0.0, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=10))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=smoke_train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=smoke_test_pipeline))
test_dataloader = val_dataloader
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
