"""ImageNet class metadata from timm's bundled files (a declared dependency; never pasted here).

timm ships the 1000 ImageNet WordNet ids in class-index order (``timm/data/_info/imagenet_synsets.txt``)
and the 200-class subsets of ImageNet-A and ImageNet-R (``imagenet_a_synsets.txt``,
``imagenet_r_synsets.txt``). They are the same lists clip_benchmark evaluates with
(``all_imagenet_wordnet_ids``, ``imagenet_a_wnids``, ``imagenet_r_wnids`` in its datasets/builder.py);
tests/test_imagenet_meta.py checks that against clip_benchmark. clip_benchmark itself is not imported at
run time (its builder imports packages it does not declare, e.g. ``requests``).

Task cards name the subsets ``clip_benchmark:imagenet-a`` (the set clip_benchmark uses) or ``timm:imagenet-a``.
"""
from __future__ import annotations

import functools
from importlib import resources

from uta_bench.errors import UtaBenchError

SUBSET_FILES = {"imagenet-a": "imagenet_a_synsets.txt", "imagenet-r": "imagenet_r_synsets.txt"}
SUBSET_SOURCES = ("clip_benchmark", "timm")


@functools.lru_cache(maxsize=None)
def _timm_synsets(name: str) -> tuple[str, ...]:
    try:
        text = resources.files("timm.data._info").joinpath(name).read_text()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise UtaBenchError(f"timm's bundled ImageNet metadata ({name}) is missing: {e}; "
                            "reinstall timm>=1.0.15") from e
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet synset ids in class-index order."""
    wnids = list(_timm_synsets("imagenet_synsets.txt"))
    if len(wnids) != 1000:
        raise UtaBenchError(f"timm's imagenet_synsets.txt lists {len(wnids)} synsets, expected 1000")
    return wnids


def subset_wnids(key: str) -> list[str]:
    """Synsets of an ImageNet subset (``imagenet-a``, ``imagenet-r``), in 1000-class order."""
    if key not in SUBSET_FILES:
        raise UtaBenchError(f"unknown class subset {key!r}; known: {', '.join(SUBSET_FILES)}")
    chosen = set(_timm_synsets(SUBSET_FILES[key]))
    return [w for w in imagenet_wnids() if w in chosen]


def subset_indices(spec) -> list[int] | None:
    """``clip_benchmark:<key>`` / ``timm:<key>`` | list of indices | None -> class indices into the
    full class list."""
    if spec is None:
        return None
    if isinstance(spec, list):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
            raise UtaBenchError("class_subset must be a list of integer class indices")
        return list(spec)
    src, _, key = str(spec).partition(":")
    if src not in SUBSET_SOURCES:
        raise UtaBenchError(f"unknown class subset {spec!r}; use clip_benchmark:imagenet-a|imagenet-r or a list")
    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    return [pos[w] for w in subset_wnids(key)]
