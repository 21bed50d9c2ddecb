"""`uta_bench.load_model`: one object with encode_image / encode_text / preprocess / tokenizer / card."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from uta_bench.checkpoint import diff_state_dicts, format_diff, read_state_dict, sha256_file
from uta_bench.errors import CheckpointError, UtaBenchError
from uta_bench.registry import ModelCard, get_card, resolve_alias

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready for evaluation. ``precision_run`` records what actually ran."""

    name: str
    card: ModelCard
    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    device: torch.device
    precision: str
    precision_run: str
    weights_path: str | None
    weights_sha256: str | None
    info: dict = field(default_factory=dict)

    def autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None or self.precision_run == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        with self.autocast():
            x = self.model.encode_image(images.to(self.device))
        x = x.float()
        return F.normalize(x, dim=-1) if normalize else x

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        with self.autocast():
            x = self.model.encode_text(tokens.to(self.device))
        x = x.float()
        return F.normalize(x, dim=-1) if normalize else x

    @property
    def visual(self) -> torch.nn.Module:
        return self.model.visual

    @property
    def text_tower(self) -> torch.nn.Module:
        """The text transformer (open_clip TextTransformer or CLIP's fused text modules); used by the
        contrastive stage to initialise its text tower from a card."""
        return getattr(self.model, "text", self.model)

    def provenance(self) -> dict:
        return {"model": self.name, "weights_sha256": self.weights_sha256, "weights_path": self.weights_path,
                "device": str(self.device), "precision": self.precision, "precision_run": self.precision_run,
                **self.info}


def model_identity(loaded) -> str:
    """The identity every cache (image features, classifiers, captions) keys a model by: its weights file's
    sha256 when it has one, else a digest of every tensor of its state dict (random-init or in-memory
    models). ``RunConfig.model_id`` overrides it for a run; see :func:`uta_bench.zeroshot.run.evaluate_loaded`."""
    import hashlib

    if loaded.weights_sha256:
        return loaded.weights_sha256
    h = hashlib.sha256()
    for k, v in sorted(loaded.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return "params:" + h.hexdigest()


def precision_run(precision: str, device: torch.device) -> str:
    """The precision a run at ``precision`` on ``device`` actually gets (recorded, part of the run key)."""
    if precision not in PRECISIONS:
        raise UtaBenchError(f"unknown precision {precision!r}; use one of fp32, bf16, fp16")
    if precision == "fp32":
        return "fp32"
    try:
        with torch.autocast(device_type=device.type, dtype=PRECISIONS[precision]):
            torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, AssertionError) as e:
        log.warning("%s autocast is not supported on %s (%s); running fp32",
                    precision, device, str(e).splitlines()[0] if str(e) else type(e).__name__)
        return "fp32"  # autocast unsupported for this dtype on this device: say so in provenance
    return f"{precision}-autocast"


def load_model(name: str, checkpoint: str | None = None, device: str = "cpu", precision: str = "fp32",
               trust_checkpoint: bool = False, pretrained: bool = True) -> LoadedModel:
    """Build model ``name`` and load its weights.

    ``pretrained=False`` keeps the random init (tests, pre-training students). ``name`` is a registered
    name or an ``open_clip:ARCH/TAG`` / ``hf-hub:ORG/NAME`` spec; ``LoadedModel.name`` is its canonical form.
    """
    card = get_card(name)
    arch_card = resolve_alias(name)
    dev = torch.device(device)
    prec_run = precision_run(precision, dev)
    if card.family == "uta":
        model, path = _load_uta(arch_card, card, checkpoint, trust_checkpoint, pretrained)
    elif card.family == "open_clip":
        from uta_bench.models.openclip import load_open_clip

        model, path = load_open_clip(card, checkpoint, trust_checkpoint, pretrained)
    else:  # pragma: no cover - registry guards this
        raise UtaBenchError(f"model family {card.family!r} is not supported")
    model = model.to(dev).eval()
    import open_clip

    preprocess = open_clip.transform.image_transform(
        card.image_size, is_train=False, mean=card.mean, std=card.std,
        interpolation=card.interpolation, resize_mode=card.resize_mode)
    tokenizer = open_clip.get_tokenizer(card.tokenizer.split(":", 1)[1], context_length=card.context_length)
    sha = sha256_file(path) if path else None
    return LoadedModel(name=card.name, card=card, model=model, preprocess=preprocess, tokenizer=tokenizer,
                       device=dev, precision=precision, precision_run=prec_run,
                       weights_path=str(path) if path else None, weights_sha256=sha,
                       info={"arch": card.arch, "family": card.family})


def _load_uta(arch_card: ModelCard, card: ModelCard, checkpoint, trust, pretrained):
    from uta_bench.models.uta import UTAModel, official_rope_tables, official_to_internal
    from uta_bench.models.weights import resolve_weights

    if not pretrained and checkpoint is None:
        return UTAModel(arch_card.arch), None
    path = resolve_weights(card, checkpoint)    # before building: a missing file fails in seconds
    sd = read_state_dict(path, trust=trust)
    if not any(k.startswith("visual.") for k in sd):
        raise CheckpointError(f"checkpoint {path} has no 'visual.*' keys: not a UTA/EVA-CLIP checkpoint "
                              f"for {card.name}")
    converted, unexpected, rope = official_to_internal(sd)
    want_cos, _ = official_rope_tables(arch_card.arch)
    bad_rope = [f"visual.{k}: checkpoint {list(v.shape)} vs model {list(want_cos.shape)}"
                for k, v in rope.items() if tuple(v.shape) != tuple(want_cos.shape)]
    model = UTAModel(arch_card.arch)
    missing, extra, shapes = diff_state_dicts(model.state_dict(), converted)
    if missing or extra or unexpected or shapes or bad_rope:
        raise CheckpointError(format_diff(card.name, missing, unexpected + extra, shapes + bad_rope))
    model.load_state_dict(converted, strict=True)
    return model, Path(path)
