# CPU smoke recipe for the LVIS path (repeat-factor sampling + federated loss + lvis API), on the LVIS-style
# variant written by `uta-bench data det-sample DIR`. Pipeline check only, not a paper setting.
_base_ = './coco_smoke.py'
data_root = 'data/det_sample/'
fed = dict(type='UTAFederatedLoss', num_classes=80, ann_file=data_root + 'annotations/lvis_v1_train.json',
           num_fed_classes=3, freq_weight_power=0.5, loss_weight=1.0)
ch = 32
head = dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=ch, norm_cfg=dict(type='LN2d'), in_channels=ch,
            fc_out_channels=64, roi_feat_size=7, num_classes=80, reg_class_agnostic=True, loss_cls=fed,
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
model = dict(
    roi_head=dict(bbox_head=[dict(head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                                        target_stds=s)) for s in stds]),
    test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=300)))
train_dataloader = dict(dataset=dict(_delete_=True, type='ClassBalancedDataset', oversample_thr=0.3,
    dataset=dict(type='LVISV1Dataset', data_root=data_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(dataset=dict(type='LVISV1Dataset', ann_file='annotations/lvis_v1_val.json',
                                   data_prefix=dict(img='')))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='LVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json',
                     metric=['bbox', 'segm'])
test_evaluator = val_evaluator
