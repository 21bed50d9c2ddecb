# Table 5, LVIS, large models (App. A.1): bs 64, 100k iters, lr 1e-4, drop-path 0.4, layer decay 0.8.
_base_ = './_vitdet_cascade_lvis.py'
global_batch_size = 64
max_iters = 100000
model = dict(backbone=dict(drop_path_rate=0.4, with_cp=True))
optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(layer_decay=0.8))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.889), int(max_iters * 0.963)], gamma=0.1),
]
