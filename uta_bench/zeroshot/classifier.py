"""Zero-shot classifier builder: class names x templates -> one text embedding per class.

Per class: mean of the L2-normalised template embeddings, renormalised (CLIP's recipe). All prompts
are encoded in large batches (not one forward per class), each batch truncated to its longest prompt,
and each template's shared prefix is encoded once (both exact, see :mod:`uta_bench.zeroshot.text`). Results
are cached on disk, content-addressed by (model identity, tokenizer, class names, templates,
precision); writes are atomic (temp file + rename).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from uta_bench.paths import atomic_write_bytes, home
from uta_bench.progress import progress_bar

Template = str | Callable[[str], str]
log = logging.getLogger(__name__)


@dataclass
class Classifier:
    weights: torch.Tensor          # (embed_dim, num_classes), columns L2-normalised
    classnames: list[str]
    key: str

    def subset(self, indices: Sequence[int]) -> "Classifier":
        """Columns ``indices`` (e.g. the 200 IN-A/IN-R classes of the 1000-class classifier)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return Classifier(self.weights[:, idx].contiguous(), [self.classnames[i] for i in idx.tolist()],
                          f"{self.key}[{hashlib.sha256(str(idx.tolist()).encode()).hexdigest()[:12]}]")

    def logits(self, image_features: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
        return scale * image_features @ self.weights


def render(template: Template, classname: str) -> str:
    return template(classname) if callable(template) else template.format(c=classname)


def template_strings(templates: Sequence[Template]) -> list[str]:
    """Canonical text of each template (for the cache key): rendered on a sentinel class name."""
    return [render(t, "{c}") for t in templates]


def cache_key(model_id: str, tokenizer_id: str, classnames, templates, precision: str) -> str:
    payload = json.dumps({"model": model_id, "tokenizer": tokenizer_id, "classnames": list(classnames),
                          "templates": template_strings(templates), "precision": precision,
                          "v": 1}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_dir() -> Path:
    return home() / "cache" / "classifiers"


@torch.no_grad()
def build_classifier(loaded, classnames: Sequence[str], templates: Sequence[Template],
                     batch_size: int = 256, use_cache: bool = True, truncate: bool = True,
                     progress: bool = False, model_id: str | None = None) -> Classifier:
    """The zero-shot classifier of ``loaded`` (a :class:`~uta_bench.models.loader.LoadedModel`); cached under
    ``model_id`` (default :func:`~uta_bench.models.loader.model_identity`)."""
    from uta_bench.models.loader import model_identity

    tok_id = f"{loaded.card.tokenizer}@{loaded.card.context_length}"
    key = cache_key(model_id or model_identity(loaded), tok_id, classnames, templates, loaded.precision_run)
    path = cache_dir() / f"{key}.safetensors"
    if use_cache and path.is_file():
        cached = _read(path)
        if cached is not None:
            return Classifier(cached, list(classnames), key)
    prompts = [render(t, c) for c in classnames for t in templates]
    tokens = loaded.tokenizer(prompts)          # stays on the CPU; each batch moves to the device
    feats = encode_prompts(loaded, tokens, len(templates), batch_size, truncate, progress, "text classifier")
    per_class = feats.view(len(classnames), len(templates), -1).mean(dim=1)
    weights = torch.nn.functional.normalize(per_class, dim=-1).T.contiguous()
    if use_cache:
        _write(path, weights, classnames)
    return Classifier(weights, list(classnames), key)


def encode_prompts(loaded, tokens: torch.Tensor, n_templates: int = 1, batch_size: int = 256,
                   truncate: bool = True, progress: bool = False, label: str = "prompts") -> torch.Tensor:
    """L2-normalised embeddings [N, D] (float32, CPU) of tokenised prompts, in their order.

    Prompts are class-major (class c, template j at ``c * n_templates + j``; captions: one "template").
    With prefix sharing, each template's common prefix is encoded once and its prompts, sorted by
    length, run only their own tokens; otherwise all prompts are sorted by length and each batch is
    truncated to its longest prompt (see :mod:`uta_bench.zeroshot.text`)."""
    if len(tokens) == 0:
        return torch.empty(0, 0)
    out = torch.empty(0)
    with progress_bar(progress, len(tokens), label, "txt") as advance:
        for idx, f in _encode_batches(loaded, tokens, n_templates, batch_size, truncate):
            if not out.numel():
                out = torch.empty(len(tokens), f.shape[1])
            out[idx] = f
            advance(len(idx))
    return out


def _encode_batches(loaded, tokens: torch.Tensor, n_templates: int, batch_size: int, truncate: bool):
    """Yield (prompt indices, embeddings) batch by batch (see :func:`encode_prompts`)."""
    from uta_bench.zeroshot.text import (encode_suffix, encode_text, prefix_states, shared_prefix_length,
                                supports_prefix_sharing, text_modules)

    from uta_bench.resources import OomBackoff

    model, dev = loaded.model, loaded.device
    sizer = OomBackoff(batch_size, what="text batch")   # halves on CUDA out-of-memory (same prompts again)
    share = truncate and supports_prefix_sharing(text_modules(model))
    groups = ([torch.arange(j, len(tokens), n_templates) for j in range(n_templates)] if share
              else [torch.arange(len(tokens))])
    for rows in groups:
        group = tokens[rows]
        p = shared_prefix_length(group) if share else 0
        order = torch.argsort(group.argmax(dim=-1), descending=True, stable=True)
        with loaded.autocast():
            states = prefix_states(model, group[:1, :p].to(dev)) if p else None
            for start in range(0, len(rows), batch_size):
                idx = order[start:start + batch_size]
                f = (sizer(lambda t: encode_suffix(model, t.to(dev), states).float().cpu(), group[idx, p:])
                     if states is not None else
                     sizer(lambda t: encode_text(model, t.to(dev), truncate=truncate).float().cpu(), group[idx]))
                yield rows[idx], f


def _write(path: Path, weights: torch.Tensor, classnames) -> None:
    from safetensors.torch import save

    write_cache_entry(path, save({"weights": weights}, metadata={"num_classes": str(len(classnames))}))


def write_cache_entry(path: Path, data: bytes) -> None:
    """Atomically write a text-feature cache entry; a read-only or full cache is a warning, not lost work."""
    import logging

    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        logging.getLogger(__name__).warning("cannot write the text cache %s (%s); going on without "
                                            "caching", path.parent, e.strerror or e)


def _read(path: Path) -> torch.Tensor | None:
    from safetensors.torch import load

    try:
        return load(path.read_bytes())["weights"]
    except Exception as e:  # noqa: BLE001 - unreadable entry: rebuild (it is rewritten atomically)
        log.warning("classifier cache entry %s is unreadable (%s); rebuilding it", path, _first_line(e))
        return None


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
