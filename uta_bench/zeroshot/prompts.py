"""Prompt templates, taken from clip_benchmark / open_clip (never pasted here); class names are
:mod:`uta_bench.data.classes`."""
from __future__ import annotations

from uta_bench.data.classes import clip_benchmark_json
from uta_bench.errors import UtaBenchError


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
    elif spec == "clip_benchmark:imagenet1k":   # = open_clip's OPENAI_IMAGENET_TEMPLATES, as strings
        from open_clip import zero_shot_metadata as z

        return [t("{c}") if callable(t) else t for t in z.OPENAI_IMAGENET_TEMPLATES]
    elif src == "clip_benchmark":
        data = clip_benchmark_json("en_zeroshot_classification_templates.json")
        if key in data:
            return list(data[key])
    raise UtaBenchError(f"unknown template set {spec!r}; use open_clip:openai_imagenet, "
                        "clip_benchmark:<dataset> or a list of strings with {c}")

