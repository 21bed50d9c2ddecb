# CPU smoke recipe: the full Cascade Mask R-CNN / ViTDet pipeline shrunk to minutes on 2 cores
# (uta_tiny tower, 256 px LSJ, narrow heads, few RoIs). Data: `uta-bench data det-sample DIR` (COCO layout).
# Not a paper setting: numbers from it only show the pipeline works.
_base_ = './_vitdet_cascade.py'
image_size = (256, 256)
data_root = 'data/det_sample/'
ch = 32
norm_cfg = dict(type='LN2d')
head = dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=ch, norm_cfg=norm_cfg, in_channels=ch,
            fc_out_channels=64, roi_feat_size=7, num_classes=80, reg_class_agnostic=True,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
model = dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(model='uta_tiny', drop_path_rate=0.1, window_size=8, global_blocks=[1], out_channels=ch),
    rpn_head=dict(in_channels=ch, feat_channels=ch),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=ch),
        bbox_head=[dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                              target_stds=s)) for s in stds],
        mask_roi_extractor=dict(out_channels=ch),
        mask_head=dict(num_convs=2, in_channels=ch, conv_out_channels=ch, norm_cfg=norm_cfg)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=[dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t,
                                            match_low_quality=False, ignore_iof_thr=-1),
                              sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1,
                                           add_gt_as_proposals=True),
                              mask_size=28, pos_weight=-1, debug=False) for t in (0.5, 0.6, 0.7)]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(score_thr=0.0, max_per_img=50)))
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline,
                                     filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
global_batch_size = 2
max_iters = 40
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[35], gamma=0.1),
]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=2e-4), paramwise_cfg=dict(layer_decay=0.7))
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1), logger=dict(interval=5),
                     visualization=dict(draw=False))
