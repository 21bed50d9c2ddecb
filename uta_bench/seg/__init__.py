"""UperNet semantic segmentation on ADE20K through mmsegmentation (Table 4, ADE20K column).

mmseg / mmcv are optional: only ``mmseg_modules``, ``config`` and ``run`` import them, lazily."""
