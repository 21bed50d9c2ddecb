# Learning check (not a paper setting): the tiny UperNet of the smoke recipe trained WITHOUT augmentation on a
# few generated ADE20K-layout scenes (64 px) and evaluated on those same scenes; mIoU must reach >= 70 %
# (tests/test_seg_learns.py copies the training split to validation for that).
_base_ = ['./upernet_uta_tiny_smoke.py']
crop_size = (64, 64)
model = dict(backbone=dict(drop_path_rate=0.0), test_cfg=dict(_delete_=True, mode='whole'))
overfit_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackSegInputs'),
]
overfit_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.0), paramwise_cfg=dict(decay_rate=1.0))
max_iters = 150
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', power=1.0, begin=10, end=max_iters, eta_min=0.0, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=25))
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=overfit_train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=overfit_test_pipeline))
test_dataloader = val_dataloader
