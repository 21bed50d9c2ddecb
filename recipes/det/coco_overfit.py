# Learning check (not a paper setting): the CPU smoke model (uta_tiny tower, Cascade Mask R-CNN) trained on a
# handful of generated images WITHOUT augmentation and evaluated on those same training images; box AP must
# climb far above chance (tests/test_det_learns.py). Data: `uta-bench data det-sample DIR` (COCO layout).
_base_ = './coco_smoke.py'
image_size = (192, 192)
model = dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(drop_path_rate=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
                                    pipeline=test_pipeline))
val_dataloader = test_dataloader
# 500 steps of batch 2 at lr 2e-3 (~4 CPU minutes): box AP 86 on the 4 training images (200 steps of batch 4 at
# lr 1e-3 left the RoI classifiers at the background prior: AP 16)
global_batch_size = 2
max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[450], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.0), paramwise_cfg=dict(layer_decay=1.0))
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1), logger=dict(interval=20))
