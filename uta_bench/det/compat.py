"""Compatibility of the OpenMMLab 2023 stack (mmengine 0.10, mmdet 3.3, lvis 0.5.3) with today's Python stack.

* mmengine 0.10.x resolves ``_base_ = 'mmdet::...'`` through ``pkg_resources``, which setuptools >= 81 no
  longer ships (and torch 2.14 needs a new setuptools). :func:`patch_mmengine_package_utils` swaps in
  ``importlib.metadata`` equivalents of ``is_installed`` / ``get_installed_path`` (same results: the
  installed package directory, where mmdet keeps its configs under ``.mim/``).
* AP comes from faster-coco-eval (no ``np.float`` shim at run time; the lvis API is only the tests' oracle).
* mmengine 0.10.x's ``launcher='pytorch'`` always calls ``torch.cuda.set_device(LOCAL_RANK)`` and wraps the model
  in DDP with ``device_ids=[LOCAL_RANK]``; both fail on a machine without a GPU. :func:`join_cpu_process_group`
  joins the (gloo) group first, so the Runner skips the former, and sets ``device_ids=None`` for CPU DDP.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os.path as osp


def _is_installed(package: str) -> bool:
    try:
        md.distribution(package)
        return True
    except md.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def _get_installed_path(package: str) -> str:
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is not None and spec.origin is not None:
        return osp.dirname(spec.origin)
    dist = md.distribution(package)  # raises PackageNotFoundError like pkg_resources' DistributionNotFound
    top = (dist.read_text("top_level.txt") or package).split()[0]
    return str(dist.locate_file(top))


def patch_mmengine_package_utils() -> None:
    """Idempotent; a no-op where ``pkg_resources`` still exists."""
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    import mmengine.config.config as cfg_mod
    import mmengine.utils as utils
    import mmengine.utils.package_utils as pu

    for mod in (pu, utils, cfg_mod):
        if hasattr(mod, "is_installed"):
            mod.is_installed = _is_installed
        if hasattr(mod, "get_installed_path"):
            mod.get_installed_path = _get_installed_path


def join_cpu_process_group(cfg) -> None:
    """Under torchrun on a machine without CUDA, join the gloo process group before ``Runner.from_cfg(cfg)``
    (mmengine then sees an initialised group and does not call ``torch.cuda.set_device``) and make the model
    wrapper a CPU DistributedDataParallel (``device_ids=None``). No-op otherwise."""
    import torch

    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return
    from uta_bench.training.dist import setup_distributed

    setup_distributed("cpu")
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("broadcast_buffers", False)
    wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
