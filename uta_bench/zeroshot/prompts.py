"""Class names and prompt templates, taken from clip_benchmark / open_clip (never pasted here)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from uta_bench.errors import UtaBenchError


@functools.lru_cache(maxsize=None)
def _clip_benchmark_json(name: str) -> dict:
    import clip_benchmark.datasets as d

    return json.loads((Path(d.__file__).parent / name).read_text())


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
    if src == "clip_benchmark":
        data = _clip_benchmark_json("en_classnames.json")
        if key in data:
            return list(data[key])
    if spec == "open_clip:imagenet":
        from open_clip import zero_shot_metadata as z

        return list(z.IMAGENET_CLASSNAMES)
    raise UtaBenchError(f"unknown class list {spec!r}; use clip_benchmark:<dataset>, folder, or a list")
