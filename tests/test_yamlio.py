"""Every user-written YAML file (recipes, check config) fails with one line naming the file, never a traceback."""
from __future__ import annotations

import pytest

from uta_bench.errors import UtaBenchError


def _loaders():
    from uta_bench.cli.check import load_config
    from uta_bench.finetune.config import load_recipe as finetune_recipe
    from uta_bench.llava.recipe import load_recipe as llava_recipe
    from uta_bench.pretrain.config import load_recipe as pretrain_recipe

    return {"check": load_config, "finetune": finetune_recipe, "llava": llava_recipe, "pretrain": pretrain_recipe}


@pytest.mark.parametrize("loader", ["check", "finetune", "llava", "pretrain"])
@pytest.mark.parametrize("text, expect", [("lr: [1, 2\n", "not valid YAML"),
                                          ("- just\n- a list\n", "expected a YAML mapping of settings, got list")])
def test_bad_yaml_is_one_line_naming_the_file(tmp_path, loader, text, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UtaBenchError) as e:
        _loaders()[loader](str(path))
    msg = str(e.value)
    assert expect in msg and str(path) in msg and "\n" not in msg


def test_empty_file_is_an_empty_mapping(tmp_path):
    from uta_bench.yamlio import read_mapping

    (tmp_path / "empty.yaml").write_text("")
    assert read_mapping(tmp_path / "empty.yaml", "recipe") == {}
