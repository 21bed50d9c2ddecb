"""Reading the YAML files users write (recipes, check configs): one-line errors, never a traceback."""
from __future__ import annotations

from pathlib import Path

from uta_bench.errors import UtaBenchError


def read_mapping(path: str | Path, what: str) -> dict:
    """The mapping in YAML file ``path`` (empty file -> {}); ``what`` names it in errors ("recipe")."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise UtaBenchError(f"{what} {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UtaBenchError(f"{what} {path}: expected a YAML mapping of settings, got {type(data).__name__}")
    return data


def merge_base(path: Path, data: dict, load_base) -> dict:
    """``data`` (recipe ``path``'s settings) on top of the recipe its ``base: NAME`` names, loaded with
    ``load_base(NAME).to_dict()``; ``data`` unchanged when it names none. A recipe naming itself is an error."""
    base = data.pop("base", None)
    if not base:
        return data
    if base == Path(path).stem:
        raise UtaBenchError(f"recipe {path}: 'base' names itself")
    merged = load_base(base).to_dict()
    merged.update(data)
    return merged
