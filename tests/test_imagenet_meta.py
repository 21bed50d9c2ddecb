"""ImageNet class metadata (timm / open_clip bundled files) against clip_benchmark as the oracle.

clip_benchmark's builder.py is read as source (ast), not imported: importing it needs `requests`,
which clip_benchmark does not declare.
"""
from __future__ import annotations

import ast
import json
from importlib import resources

import pytest

from uta_bench.data.imagenet_meta import imagenet_wnids, subset_indices, subset_wnids
from uta_bench.errors import UtaBenchError
from uta_bench.data.classes import classnames
from uta_bench.zeroshot.prompts import templates


def _builder_literal(name: str) -> list[str]:
    src = resources.files("clip_benchmark.datasets").joinpath("builder.py").read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) == name:
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                continue
    raise AssertionError(f"clip_benchmark's builder.py has no literal {name}")


def _cb_json(name: str) -> dict:
    return json.loads(resources.files("clip_benchmark.datasets").joinpath(name).read_text())


def test_wnids_match_clip_benchmark():
    assert imagenet_wnids() == _builder_literal("all_imagenet_wordnet_ids")


@pytest.mark.parametrize("key,var", [("imagenet-a", "imagenet_a_wnids"), ("imagenet-r", "imagenet_r_wnids")])
def test_subsets_match_clip_benchmark(key, var):
    cb = _builder_literal(var)
    assert len(cb) == 200 and set(subset_wnids(key)) == set(cb)
    all_ids = _builder_literal("all_imagenet_wordnet_ids")
    want = sorted(all_ids.index(w) for w in cb)          # clip_benchmark slices the 1000-class head in 1000-order
    assert subset_indices(f"clip_benchmark:{key}") == want == subset_indices(f"timm:{key}")


def test_imagenet_names_and_templates_match_clip_benchmark():
    assert classnames("clip_benchmark:imagenet1k") == _cb_json("en_classnames.json")["imagenet1k"]
    assert templates("clip_benchmark:imagenet1k") == _cb_json("en_zeroshot_classification_templates.json")["imagenet1k"]


def test_unknown_subset_is_one_line_error():
    with pytest.raises(UtaBenchError, match="unknown class subset"):
        subset_indices("clip_benchmark:imagenet-o")
