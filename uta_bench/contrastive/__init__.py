"""The paper's second stage: contrastive fine-tuning of a UTA image tower + CLIP text tower (Sec. 3, App. A.1).

* :mod:`.config` — the recipe (``recipes/contrastive/*.yaml``)
* :mod:`.data` — image–text pairs streamed from webdataset shards, with an exact resumable position
* :mod:`.model` — both towers initialised (image tower resampled to the target patch/grid), layer-decay groups,
  export in the released UTA layout with provenance
* :mod:`.loss` — open_clip's ``ClipLoss`` over the global batch, cached-feature gradient accumulation
* :mod:`.train` — the loop, on the shared training core (``uta_bench.training``)
"""
