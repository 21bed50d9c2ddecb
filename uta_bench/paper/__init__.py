"""The paper's Tables 1-8 as data, their layouts, the measured-row -> paper-cell mapping, renderers.

Paper rows live in ``results/paper/table{1,2,3,4,5,6,7,8a,8b}.csv`` (Table 8's left half, mask ratio,
is ``8a``; its right half, mask type, is ``8b``), one row per printed number, in the store's schema
plus the paper's row attributes:

``source`` (always ``paper``), ``paper_table``, ``paper_row`` (row label, unique in its table),
``method``, ``model`` (the paper's model label, e.g. ``B/16@224`` in Table 1, ``B`` in Table 2),
``size`` (B/L/g), ``patch``, ``resolution``, ``it_pairs`` (``# I-T Pairs``), ``params``, ``config``
(ablation setting, e.g. ``mask_ratio=0.4``), ``column`` (the printed column, header levels joined by
``/``), ``task``, ``metric``, ``value``, ``unit``, ``note``.

Values follow the store: percentages are fractions (``77.0`` -> ``0.77``, ``unit=%``); ``unit=px``
is an input size, ``M`` a parameter count (value in units), ``x`` relative FLOPs. Cells the paper
prints as ``-`` have no row.

Task / metric names (what measured rows must be called to land in a paper cell)
-------------------------------------------------------------------------------
=======================  =============================================  =================================
paper column             task                                           metric
=======================  =============================================  =================================
T1 IN-1K .. ObjectNet    imagenet1k, imagenet_a, imagenet_r,            top1
                         imagenet_v2, imagenet_sketch, objectnet
T1 Average               zeroshot_avg6 (ours: mean of the six, derived) top1
T2 Text Retrieval/D/R@k  flickr30k, mscoco                              text_retrieval_recall@k (image->text)
T2 Image Retrieval/D/R@k flickr30k, mscoco                              image_retrieval_recall@k (text->image)
T3 Conversation..Overall llava_bench                                    conversation, detail, reasoning, overall
T4/6/7/8 ImageNet ZS     imagenet1k                                     top1 (T7 teacher column: teacher_top1)
T4/6/7/8 ImageNet FT     imagenet1k_ft                                  top1
T4/6/7/8 ADE20K mIoU     ade20k                                         mIoU
T5/6/7/8 COCO / LVIS AP  coco, lvis                                     bbox_mAP, segm_mAP
=======================  =============================================  =================================

Metric aliases accepted for measured rows (the one map: :data:`uta_bench.metricnames.METRIC_ALIASES`):
clip_benchmark's ``acc1``; ``image_to_text_R@k`` / ``i2t_R@k`` / ``image_to_text_recall@k`` for text
retrieval, ``text_to_image_R@k`` / ``t2i_R@k`` / ``text_to_image_recall@k`` for image retrieval;
``miou``/``mIoU``; mmdet's ``coco/bbox_mAP`` style names.

A measured task whose name differs (e.g. ``imagenet1k_val``) reaches a paper cell through its task
card's ``paper: {table: "1", column: "IN-1K"}`` (for retrieval ``column: Flickr30k`` or ``COCO``: the
dataset level of the header). The row is data: the measured row's own ``paper_table``/``paper_row``
when its writer set them, else the row the model card's ``PaperRef`` declares for that table
(:func:`uta_bench.paper.mapping.card_paper_row`); nothing is derived from labels or descriptions.
"""
from uta_bench.paper.rows import PAPER_TABLES, load_paper_rows, paper_dir

__all__ = ["PAPER_TABLES", "load_paper_rows", "paper_dir"]
