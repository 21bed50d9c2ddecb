"""Model registry: cards describing every model uta-bench can load (like timm's pretrained cfgs).

Pure data, no torch import: `uta-bench models` must stay instant. The built-in cards
(:mod:`uta_bench.model_cards`, :mod:`uta_bench.demo.cards`) are registered when this module is imported,
so the registry is complete whatever was imported first; :func:`register_model` adds more.
"""
from __future__ import annotations

from dataclasses import replace

from uta_bench import model_cards
from uta_bench.demo import cards as demo_cards
from uta_bench.errors import suggest
from uta_bench.modelcard import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ModelCard, PaperRef, Weights
from uta_bench.speccards import canonical, is_spec, spec_card

__all__ = ["OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "ModelCard", "PaperRef", "Weights", "register_model", "get_card",
           "resolve_alias", "list_models", "cards", "is_spec", "canonical_name"]

_REGISTRY: dict[str, ModelCard] = {}


def register_model(card: ModelCard) -> ModelCard:
    if card.name in _REGISTRY:
        raise ValueError(f"model {card.name!r} registered twice")
    _REGISTRY[card.name] = card
    return card


def list_models(include_test: bool = True) -> list[str]:
    return [n for n, c in _REGISTRY.items() if include_test or "test" not in c.tags]


def canonical_name(name: str) -> str:
    """The name the store records for ``name``: a registered name as it is, an ``open_clip:`` / ``hf-hub:``
    spec in canonical form (checked, nothing downloaded); unknown names fail with suggestions."""
    if is_spec(name):
        return canonical(name)
    if name not in _REGISTRY:
        raise suggest(name, _REGISTRY, "model")
    return name


def get_card(name: str) -> ModelCard:
    """Card for ``name``; an alias resolves to its target's card, keeping the alias name (``alias_of`` says
    which target; everything else, weights and paper rows included, is the target's).
    ``open_clip:ARCH/TAG`` and ``hf-hub:ORG/NAME`` specs get a card made from open_clip's config."""
    if is_spec(name):
        return spec_card(name)
    if name not in _REGISTRY:
        raise suggest(name, _REGISTRY, "model")
    card = _REGISTRY[name]
    if card.alias_of:
        target = resolve_alias(name)
        return replace(target, name=name, alias_of=target.name, description=card.description or target.description)
    return card


def resolve_alias(name: str) -> ModelCard:
    """The target card of an alias (the card itself otherwise); chains of aliases are followed."""
    if is_spec(name):
        return spec_card(name)
    if name not in _REGISTRY:
        raise suggest(name, _REGISTRY, "model")
    card, seen = _REGISTRY[name], {name}
    while card.alias_of:
        if card.alias_of in seen or card.alias_of not in _REGISTRY:
            raise ValueError(f"model card {name!r}: alias_of {card.alias_of!r} is not a registered card")
        seen.add(card.alias_of)
        card = _REGISTRY[card.alias_of]
    return card


def cards() -> dict[str, ModelCard]:
    return dict(_REGISTRY)


for _card in (*model_cards.CARDS, *demo_cards.CARDS):
    register_model(_card)
