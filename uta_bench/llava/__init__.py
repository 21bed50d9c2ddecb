"""LLaVA two-stage visual instruction tuning on frozen vision towers, and LLaVA-Bench (paper Table 3).

Modules: ``vision`` (patch features of a chosen block), ``lm`` (Hugging Face causal LMs incl. GGUF),
``conversation`` (LLaVA JSON conversations -> token ids + labels), ``model`` (projector + splicing at
``<image>``), ``data`` (datasets and generated sample data), ``train`` (stage 1 / 2 loops),
``judge`` / ``judge_server`` (pluggable judges), ``bench`` (LLaVA-Bench run + aggregation).
Heavy imports (torch, transformers) happen inside these modules, never at package import.
"""
