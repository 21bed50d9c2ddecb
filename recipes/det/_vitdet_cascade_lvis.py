# LVIS v1 variant of _vitdet_cascade.py, as ViTDet does it: repeat-factor sampling (mmdet ClassBalancedDataset,
# threshold 1e-3), federated sigmoid loss in the box heads (uta_bench UTAFederatedLoss: positives + 50 classes
# sampled by image_count^0.5), up to 300 detections per image with score > 0.02.
_base_ = './_vitdet_cascade.py'
data_root = 'data/lvis_v1/'
num_classes = 1203
lvis_train = data_root + 'annotations/lvis_v1_train.json'
fed = dict(type='UTAFederatedLoss', num_classes=num_classes, ann_file=lvis_train, num_fed_classes=50,
           freq_weight_power=0.5, loss_weight=1.0)
# (mmengine replaces lists instead of merging them, so the three cascade heads are spelled out again)
head = dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=dict(type='LN2d'), in_channels=256,
            fc_out_channels=1024, roi_feat_size=7, num_classes=num_classes, reg_class_agnostic=True, loss_cls=fed,
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.1, 0.1, 0.2, 0.2])),
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.05, 0.05, 0.1, 0.1])),
            dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.033, 0.033, 0.067, 0.067])),
        ],
        mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rcnn=dict(score_thr=0.02, max_per_img=300)))
train_dataloader = dict(dataset=dict(_delete_=True, type='ClassBalancedDataset', oversample_thr=1e-3,
    dataset=dict(type='LVISV1Dataset', data_root=data_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(dataset=dict(type='LVISV1Dataset', data_root=data_root,
                                   ann_file='annotations/lvis_v1_val.json', data_prefix=dict(img='')))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='LVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json',
                     metric=['bbox', 'segm'])
test_evaluator = val_evaluator
