"""The fine-tuned classifier: a registered model's timm ``Eva`` tower with a new class head.

Checkpoint layout written by :func:`save_finetuned` (the "registered way" to reload it):

* ``<name>.safetensors`` -- the whole model in the released (official) key layout via
  :func:`uta_bench.models.uta.internal_to_official`: the fine-tuned trunk (``visual.*``), the source
  model's CLIP projection (``visual.head``), text tower and ``logit_scale``. It loads unchanged with
  ``uta_bench.load_model(model, checkpoint=PATH)`` (strict keys and shapes, sha256 in provenance).
* ``<name>.classifier.safetensors`` -- the class head (``weight`` [C, D], ``bias`` [C]) with metadata:
  class folder names, pooling, the model name/arch and the sha256 of the trunk file it belongs to.

:func:`load_finetuned` goes through ``load_model`` and then attaches the head.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from uta_bench.errors import CheckpointError, NotFoundError, UtaBenchError

HEAD_SUFFIX = ".classifier.safetensors"


def head_path(checkpoint: str | Path) -> Path:
    p = Path(checkpoint)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + HEAD_SUFFIX)


def check_card(name: str) -> None:
    """Fail fast (before any weights load) for models without a timm Eva tower."""
    from uta_bench.registry import get_card

    card = get_card(name)
    if card.family != "uta":
        raise UtaBenchError(f"model {name} ({card.family}) has no timm Eva vision tower; fine-tuning supports "
                            "the UTA-family models (see `uta-bench models`)")


def require_eva(loaded) -> str:
    """The uta arch name of ``loaded``; clear error for towers that are not timm Eva."""
    from timm.models.eva import Eva

    if loaded.card.family != "uta" or not isinstance(loaded.model.visual, Eva):
        raise UtaBenchError(f"model {loaded.name} ({loaded.card.family}) has no timm Eva vision tower; "
                            "fine-tuning supports the UTA-family models (see `uta-bench models`)")
    return loaded.card.arch


def finetune_tower(loaded, num_classes: int, drop_path_rate: float = 0.0) -> torch.nn.Module:
    """A fresh ``Eva`` of the same arch with drop-path and a ``num_classes`` head, trunk copied exactly."""
    from uta_bench.models.uta import build_visual

    arch = require_eva(loaded)
    tower = build_visual(arch, num_classes=num_classes, drop_path_rate=drop_path_rate)
    src = {k: v for k, v in loaded.model.visual.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = tower.load_state_dict(src, strict=False)
    if sorted(missing) != ["head.bias", "head.weight"] or unexpected:  # pragma: no cover - same builder
        raise CheckpointError(f"trunk of {loaded.name} does not fit a fresh {arch} tower: "
                              f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return tower.to(loaded.device)


def trunk_state(tower: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tower.state_dict().items() if not k.startswith("head.")}


def save_finetuned(path: str | Path, loaded, tower: torch.nn.Module, classes: list[str],
                   meta: dict | None = None) -> tuple[Path, Path]:
    """Write the fine-tuned model (official layout) + its class head; returns both paths."""
    from safetensors.torch import save_file

    from uta_bench.checkpoint import sha256_file
    from uta_bench.models.uta import internal_to_official

    arch = require_eva(loaded)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}
    for k, v in trunk_state(tower).items():
        key = f"visual.{k}"
        if key not in full or full[key].shape != v.shape:  # pragma: no cover - same builder
            raise CheckpointError(f"fine-tuned key {key} does not fit {loaded.name}")
        full[key] = v.detach().cpu()
    official = internal_to_official(full, arch)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.float().contiguous().clone() for k, v in official.items()}, str(tmp))
    tmp.replace(path)
    head = tower.head
    info = {"classes": list(classes), "num_classes": len(classes), "model": loaded.name, "arch": arch,
            "pool": tower.global_pool, "embed_dim": int(head.weight.shape[1]),
            "trunk_sha256": sha256_file(path), **(meta or {})}
    hp = head_path(path)
    tmp = hp.with_name(f".{hp.name}.tmp")
    save_file({"weight": head.weight.detach().float().cpu().contiguous().clone(),
               "bias": head.bias.detach().float().cpu().contiguous().clone()}, str(tmp),
              metadata={"uta_bench_classifier": json.dumps(info, default=str)})
    tmp.replace(hp)
    return path, hp


def read_head(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    hp = head_path(checkpoint)
    if not hp.is_file():
        raise NotFoundError(f"no class head {hp} next to {checkpoint}; fine-tuned checkpoints are written "
                            "by `uta-bench train finetune` as <name>.safetensors + <name>" + HEAD_SUFFIX)
    try:
        with safe_open(str(hp), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("uta_bench_classifier", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"class head {hp} cannot be read ({str(e).splitlines()[0][:160]})") from None
    if not isinstance(meta, dict) or set(tensors) != {"weight", "bias"}:
        raise CheckpointError(f"{hp} is not a uta-bench class head (needs weight/bias + metadata)")
    return tensors, meta


def load_finetuned(model: str, checkpoint: str, device: str = "cpu", precision: str = "fp32",
                   trust_checkpoint: bool = False):
    """``(loaded, classifier, meta)``: the normal ``load_model`` path, then the class head attached."""
    from uta_bench.models.loader import load_model

    head, meta = read_head(checkpoint)
    loaded = load_model(model, checkpoint=checkpoint, device=device, precision=precision,
                        trust_checkpoint=trust_checkpoint)
    require_eva(loaded)
    if meta.get("trunk_sha256") and meta["trunk_sha256"] != loaded.weights_sha256:
        raise CheckpointError(f"class head {head_path(checkpoint)} was written for another trunk file "
                              f"(sha256 {meta['trunk_sha256'][:12]} vs {str(loaded.weights_sha256)[:12]})")
    if meta.get("arch") and meta["arch"] != loaded.card.arch:
        raise CheckpointError(f"fine-tuned checkpoint is a {meta['arch']} model, not {loaded.card.arch} "
                              f"({model}); pass --model {meta.get('model')}")
    clf = copy.deepcopy(loaded.model.visual)
    clf.reset_classifier(int(head["weight"].shape[0]))
    if head["weight"].shape[1] != clf.embed_dim:
        raise CheckpointError(f"class head width {head['weight'].shape[1]} does not fit {model} "
                              f"(embed dim {clf.embed_dim})")
    clf.head.load_state_dict(head)
    return loaded, clf.to(loaded.device).eval(), meta
