# Cascade Mask R-CNN with a ViTDet backbone built from a UTA tower (uta_bench.det.mmdet_modules.UTAViTDet).
# Heads, assigners, samplers, LSJ data pipeline and COCO dataset come from mmdet's own configs (inherited from
# the installed mmdet package, `mmdet::`); only the ViTDet-specific parts are overridden here:
# simple feature pyramid inside the backbone (no FPN neck), 2-conv RPN, 4conv1fc box heads and mask head with
# LayerNorm (ViTDet "LN" heads), CLIP pixel statistics, 1024 px LSJ, AdamW with layer-wise lr decay.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['uta_bench.det.mmdet_modules'], allow_failed_imports=False)

image_size = (1024, 1024)
uta_model = 'uta_b16'          # set by `uta-bench train det --model`
norm_cfg = dict(type='LN2d')
batch_augments = [dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]

head = dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg, in_channels=256,
            fc_out_channels=1024, roi_feat_size=7, num_classes=80, reg_class_agnostic=True,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
model = dict(
    data_preprocessor=dict(
        # OpenAI-CLIP / EVA statistics (the UTA towers' preprocessing), in 0-255 units
        mean=[122.7709383, 116.7460125, 104.09373615], std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True, pad_mask=True, pad_size_divisor=32, batch_augments=batch_augments),
    backbone=dict(_delete_=True, type='UTAViTDet', model=uta_model, checkpoint=None, pretrained=True,
                  drop_path_rate=0.1, window_size=16, global_blocks=None, out_channels=256, with_cp=False),
    neck=None,
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=[
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.1, 0.1, 0.2, 0.2])),
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.05, 0.05, 0.1, 0.1])),
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.033, 0.033, 0.067, 0.067])),
        ],
        mask_head=dict(norm_cfg=norm_cfg)),
)

# ViTDet evaluation: longest side 1024, padded to 1024 x 1024
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# iteration-based training draws from an InfiniteSampler: mmengine's epoch-based DefaultSampler sleeps 2 s at
# every epoch end (mmengine.runner.loops._InfiniteDataloaderIterator), i.e. at every step on a tiny data set
train_dataloader = dict(batch_size=2, num_workers=4, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(_delete_=True, type='CocoDataset',
    data_root='data/coco/', ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# iteration-based schedule: linear warm-up 250 iters, x0.1 at 88.9% and 96.3% (ViTDet's step schedule)
max_iters = 60000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.889), int(max_iters * 0.963)], gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True, type='AmpOptimWrapper',
    constructor='UTALayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay=0.7),
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.1))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=2),
                     logger=dict(interval=20))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=128)
global_batch_size = 128        # split over GPUs by `uta-bench train det`
