# Table 5, COCO, base models (App. A.1): bs 128, 60k iters, lr 5e-5, drop-path 0.1, layer decay 0.7.
_base_ = './_vitdet_cascade.py'
global_batch_size = 128
max_iters = 60000
model = dict(backbone=dict(drop_path_rate=0.1))
optim_wrapper = dict(optimizer=dict(lr=5e-5), paramwise_cfg=dict(layer_decay=0.7))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.889), int(max_iters * 0.963)], gamma=0.1),
]
