"""Model cards made on the fly for any open_clip model: ``open_clip:ARCH/TAG``, ``open_clip:ARCH`` (no
weights: ``--random-init`` or ``--checkpoint``) and ``hf-hub:ORG/NAME`` (a hub repo in open_clip's layout).

The card is an ordinary :class:`~uta_bench.modelcard.ModelCard` read from open_clip's own configuration —
``open_clip.get_pretrained_cfg`` (mean/std, interpolation, resize mode, QuickGELU) and
``open_clip.get_model_config`` (image size, context length, embedding width) — or, for the hub, from the
repo's ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``), fetched with huggingface_hub as open_clip
does. Its name is the canonical spec string, which is what the store records as the model.
open_clip is imported only when a spec is used: `uta-bench models` stays instant.
"""
from __future__ import annotations

import difflib
import functools
import json
import logging

from uta_bench.errors import NotFoundError, UtaBenchError
from uta_bench.modelcard import ModelCard, Weights

log = logging.getLogger(__name__)

OPEN_CLIP = "open_clip:"
HF_HUB = "hf-hub:"
SYNTAX = ("open_clip:ARCH/TAG (an open_clip pretrained tag), open_clip:ARCH (no weights: --random-init or "
          "--checkpoint) or hf-hub:ORG/NAME (a hub repo with open_clip_config.json)")


def is_spec(name: str) -> bool:
    """True for ``open_clip:...`` / ``hf-hub:...`` model names (cards made on the fly)."""
    return isinstance(name, str) and name.startswith((OPEN_CLIP, HF_HUB))


def _close(name: str, choices, what: str) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:  # case slips ('vit-b-32') are the commonest typo; difflib is case-sensitive
        low = {c.lower(): c for c in choices}
        close = [low[m] for m in difflib.get_close_matches(name.lower(), list(low), n=3, cutoff=0.5)]
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else what


def normal_tag(tag: str) -> str:
    """A pretrained tag the way open_clip normalises it (``LAION2B-s34b-b79k`` -> ``laion2b_s34b_b79k``)."""
    return tag.lower().replace("-", "_")


def _open_clip_parts(spec: str) -> tuple[str, str | None]:
    """(arch, tag or None) of ``open_clip:ARCH[/TAG]``, both checked against open_clip's lists."""
    import open_clip

    rest = spec[len(OPEN_CLIP):]
    arch, slash, tag = rest.partition("/")
    if not arch or (slash and not tag) or "/" in tag:
        raise UtaBenchError(f"model {spec!r} is not a valid spec; use {SYNTAX}")
    if arch not in open_clip.list_models():
        raise NotFoundError(f"unknown open_clip architecture {arch!r} in {spec!r}; "
                            + _close(arch, open_clip.list_models(),
                                     "see open_clip.list_models() for the architectures"))
    if not slash:
        return arch, None
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not open_clip.get_pretrained_cfg(arch, tag):
        known = ", ".join(tags) if tags else "none (use open_clip:ARCH with --random-init or --checkpoint)"
        raise NotFoundError(f"open_clip {arch} has no pretrained tag {tag!r}; "
                            + _close(tag, tags, "") + f" (tags of {arch}: {known})")
    clean = normal_tag(tag)
    return arch, next((t for t in tags if t == clean), clean)


def hub_repo(spec: str) -> str:
    """``ORG/NAME`` of ``hf-hub:ORG/NAME`` (syntax only; nothing fetched)."""
    repo = spec[len(HF_HUB):]
    parts = repo.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts) or any(p != p.strip() for p in parts):
        raise UtaBenchError(f"model {spec!r} is not a valid spec; use {SYNTAX}")
    return repo


def canonical(spec: str) -> str:
    """The canonical spec string (the store's model name): tags normalised the way open_clip does.
    Checks open_clip archs/tags; hub repos are checked for syntax only (nothing is fetched)."""
    if spec.startswith(HF_HUB):
        return HF_HUB + hub_repo(spec)
    arch, tag = _open_clip_parts(spec)
    return f"{OPEN_CLIP}{arch}" + (f"/{tag}" if tag else "")


def hub_config_path(repo: str) -> str:
    """Local path of the repo's ``open_clip_config.json`` (huggingface_hub's cache; downloaded if needed)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(repo, "open_clip_config.json")
    except LocalEntryNotFoundError:     # before EntryNotFoundError: it is one
        raise NotFoundError(f"open_clip_config.json of hf-hub:{repo} is not in the Hugging Face cache and the "
                            "hub cannot be reached; run once online (or unset HF_HUB_OFFLINE)") from None
    except RepositoryNotFoundError:
        raise NotFoundError(f"no Hugging Face hub repo {repo!r} (private or misspelt?); check the name of "
                            f"hf-hub:{repo}") from None
    except EntryNotFoundError:
        raise NotFoundError(f"hub repo {repo!r} has no open_clip_config.json: not an open_clip model; "
                            "use a repo made by open_clip's push_to_hf_hub") from None
    except OSError as e:                # network errors past huggingface_hub's own handling
        raise NotFoundError(f"open_clip_config.json of hf-hub:{repo} could not be fetched "
                            f"({type(e).__name__}); check the network or HF_ENDPOINT") from None


def _preprocess(overlay: dict) -> dict:
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    return merge_preprocess_dict(asdict(PreprocessCfg()), overlay or {})


def _card(name: str, arch: str, model_cfg: dict, pre: dict, weights: Weights, tokenizer: str,
          quick_gelu: bool, description: str) -> ModelCard:
    size = model_cfg["vision_cfg"].get("image_size", 224)
    return ModelCard(
        name=name, family="open_clip", arch=arch, image_size=tuple(size) if isinstance(size, list) else size,
        weights=weights, mean=tuple(pre["mean"]), std=tuple(pre["std"]), interpolation=pre["interpolation"],
        resize_mode=pre["resize_mode"], tokenizer=tokenizer,
        context_length=int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        embed_dim=int(model_cfg["embed_dim"]), quick_gelu=quick_gelu, description=description, tags=("spec",))


@functools.lru_cache(maxsize=64)
def spec_card(spec: str) -> ModelCard:
    """The card of an ``open_clip:`` / ``hf-hub:`` spec (see the module docstring)."""
    import open_clip

    name = canonical(spec)
    if name.startswith(HF_HUB):
        repo = hub_repo(name)
        with open(hub_config_path(repo), encoding="utf-8") as f:
            cfg = json.load(f)
        if "model_cfg" not in cfg:
            raise NotFoundError(f"open_clip_config.json of hf-hub:{repo} has no model_cfg; not an open_clip repo")
        model_cfg = cfg["model_cfg"]
        return _card(name, name, model_cfg, _preprocess(cfg.get("preprocess_cfg", {})), Weights(hf_repo=repo),
                     f"open_clip:{name}", bool(model_cfg.get("quick_gelu", False)),
                     f"open_clip model from the Hugging Face hub repo {repo}")
    arch, _, tag = name[len(OPEN_CLIP):].partition("/")
    pretrained = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    model_cfg = open_clip.get_model_config(arch)
    return _card(name, arch, model_cfg, _preprocess(pretrained), Weights(open_clip_pretrained=tag or None),
                 f"open_clip:{arch}", bool(pretrained.get("quick_gelu", False) or model_cfg.get("quick_gelu", False)),
                 f"open_clip {arch} / {tag}" if tag else f"open_clip {arch} (no pretrained weights named)")
