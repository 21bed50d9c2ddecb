"""Cascade Mask R-CNN / ViTDet detection (Table 5) through mmdet.

mmdet / mmcv / mmengine / faster-coco-eval are optional (``scripts/build_mmcv.sh`` builds mmcv 2.1.0 with ops and installs
the ``det`` extra). Only :mod:`uta_bench.det.mmdet_modules`, :mod:`~uta_bench.det.config`,
:mod:`~uta_bench.det.train`, :mod:`~uta_bench.det.evaluate` and :mod:`~uta_bench.det.compat` need them, and they
are imported lazily by the CLI. :mod:`~uta_bench.det.backbone`, :mod:`~uta_bench.det.weights`,
:mod:`~uta_bench.det.losses`, :mod:`~uta_bench.det.sample` and the COCO half of :mod:`~uta_bench.det.metrics`
need only torch, timm and pycocotools (AP: faster-coco-eval).
"""
