"""Class names and prompt templates, taken from open_clip's bundled metadata (never pasted here).

``clip_benchmark:imagenet1k`` (the names/templates clip_benchmark evaluates ImageNet with) resolves to
open_clip's ``IMAGENET_CLASSNAMES`` / ``OPENAI_IMAGENET_TEMPLATES``, which are identical to clip_benchmark's
JSON (tests/test_imagenet_meta.py checks that against clip_benchmark). Other ``clip_benchmark:<key>``
sets are read from clip_benchmark's data files when it is installed (it is not a runtime dependency).
"""
from __future__ import annotations

import functools
import json

from uta_bench.errors import UtaBenchError


@functools.lru_cache(maxsize=None)
def _clip_benchmark_json(name: str) -> dict:
    """A data file of clip_benchmark's (read as data: its dataset modules import undeclared packages)."""
    from importlib import resources

    try:
        return json.loads(resources.files("clip_benchmark.datasets").joinpath(name).read_text())
    except ModuleNotFoundError as e:
        raise UtaBenchError("class names / templates other than clip_benchmark:imagenet1k need clip_benchmark "
                            "(pip install 'clip_benchmark>=1.6')") from e


def _open_clip_imagenet_templates() -> list[str]:
    from open_clip import zero_shot_metadata as z

    return [t("{c}") if callable(t) else t for t in z.OPENAI_IMAGENET_TEMPLATES]


def templates(spec, data_templates: list | None = None) -> list:
    """``open_clip:openai_imagenet`` | ``open_clip:simple_imagenet`` | ``clip_benchmark:<key>`` |
    ``dataset`` (a wds folder's zeroshot_classification_templates.txt) | list."""
    if isinstance(spec, list):
        return list(spec)
    if spec == "dataset":
        if not data_templates:
            raise UtaBenchError("templates: dataset needs zeroshot_classification_templates.txt in the data")
        return list(data_templates)
    src, _, key = spec.partition(":")
    if src == "open_clip":
        from open_clip import zero_shot_metadata as z

        table = {"openai_imagenet": z.OPENAI_IMAGENET_TEMPLATES, "simple_imagenet": z.SIMPLE_IMAGENET_TEMPLATES}
        if key in table:
            return list(table[key])
    elif spec == "clip_benchmark:imagenet1k":
        return _open_clip_imagenet_templates()
    elif src == "clip_benchmark":
        data = _clip_benchmark_json("en_zeroshot_classification_templates.json")
        if key in data:
            return list(data[key])
    raise UtaBenchError(f"unknown template set {spec!r}; use open_clip:openai_imagenet, "
                        "clip_benchmark:<dataset> or a list of strings with {c}")


def classnames(spec, folder_names: list[str] | None = None) -> list[str]:
    """``clip_benchmark:<key>`` | ``open_clip:imagenet`` | ``folder``/``dataset`` (names shipped with the
    data: folder names, classnames.txt, ObjectNet's mapping) | list."""
    if isinstance(spec, list):
        return list(spec)
    if spec in ("folder", "dataset"):
        if folder_names is None:
            raise UtaBenchError(f"classes: {spec} needs class names in the data (folders, classnames.txt)")
        return folder_names
    src, _, key = spec.partition(":")
    if spec == "clip_benchmark:imagenet1k":
        spec = "open_clip:imagenet"
    elif src == "clip_benchmark":
        data = _clip_benchmark_json("en_classnames.json")
        if key in data:
            return list(data[key])
    if spec == "open_clip:imagenet":
        from open_clip import zero_shot_metadata as z

        return list(z.IMAGENET_CLASSNAMES)
    raise UtaBenchError(f"unknown class list {spec!r}; use clip_benchmark:<dataset>, folder, or a list")
