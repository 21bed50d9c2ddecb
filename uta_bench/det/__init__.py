"""Cascade Mask R-CNN / ViTDet detection (Table 5) through mmdet.

mmdet / mmcv / mmengine are optional (``pip install -e '.[det]'`` after ``scripts/build_mmcv.sh``): only
:mod:`uta_bench.det.mmdet_modules`, :mod:`uta_bench.det.train` and :mod:`uta_bench.det.evaluate` import them,
lazily. :mod:`uta_bench.det.backbone`, :mod:`uta_bench.det.weights`, :mod:`uta_bench.det.metrics`' pure-COCO
parts and :mod:`uta_bench.det.sample` work without them.
"""
