"""ImageNet class metadata taken from clip_benchmark's own source (never pasted here).

clip_benchmark 1.6.x keeps the 1000 ImageNet WordNet ids (``all_imagenet_wordnet_ids``, the sorted
synset order that defines the ImageNet class index) and the 200-class subsets of ImageNet-A
(``imagenet_a_wnids``) and ImageNet-R (``imagenet_r_wnids``) as Python literals in
``clip_benchmark/datasets/builder.py``. We read those literals with :mod:`ast` so the subsets are
exactly the ones clip_benchmark evaluates with: a subset of the 1000-class classifier, in 1000-class order.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

from uta_bench.errors import UtaBenchError

SUBSET_VARS = {"imagenet-a": "imagenet_a_wnids", "imagenet-r": "imagenet_r_wnids",
               "imagenet-o": "imagenet_o_wnids"}


@functools.lru_cache(maxsize=1)
def _builder_literals() -> dict[str, list[str]]:
    import clip_benchmark.datasets.builder as b

    tree = ast.parse(Path(b.__file__).read_text())
    wanted = {"all_imagenet_wordnet_ids", *SUBSET_VARS.values()}
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in wanted and name not in out:
                try:
                    out[name] = list(ast.literal_eval(node.value))
                except ValueError:
                    continue
    missing = wanted - set(out)
    if missing:
        raise UtaBenchError(f"clip_benchmark {getattr(b, '__file__', '')} lacks {sorted(missing)}; "
                            "install clip_benchmark 1.6.x")
    return out


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet synset ids in class-index order."""
    return list(_builder_literals()["all_imagenet_wordnet_ids"])


def subset_wnids(key: str) -> list[str]:
    """Synsets of an ImageNet subset (``imagenet-a``, ``imagenet-r``), in 1000-class order."""
    if key not in SUBSET_VARS:
        raise UtaBenchError(f"unknown class subset {key!r}; known: {', '.join(SUBSET_VARS)}")
    chosen = set(_builder_literals()[SUBSET_VARS[key]])
    return [w for w in imagenet_wnids() if w in chosen]


def subset_indices(spec) -> list[int] | None:
    """``clip_benchmark:<key>`` | list of indices | None -> class indices into the full class list."""
    if spec is None:
        return None
    if isinstance(spec, list):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
            raise UtaBenchError("class_subset must be a list of integer class indices")
        return list(spec)
    src, _, key = str(spec).partition(":")
    if src != "clip_benchmark":
        raise UtaBenchError(f"unknown class subset {spec!r}; use clip_benchmark:imagenet-a|imagenet-r or a list")
    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    return [pos[w] for w in subset_wnids(key)]
