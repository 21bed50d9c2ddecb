"""Task cards: YAML files under ``tasks/`` describing each evaluation (like lm-evaluation-harness).

A card names its type, data location/format, classes, templates, metrics and expected sample
count. A card with a missing or wrongly typed field fails with an error naming the field. A path to
an ImageFolder can also be given as a task: it becomes an ad-hoc classification card.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from uta_bench.errors import UtaBenchError, suggest
from uta_bench.paths import repo_root

TASK_TYPES = ("classification", "retrieval", "suite")


class DefaultMetrics(list):
    """The metrics of a card that lists none (top1, top5): on a folder with fewer than 5 classes top5 is
    kept as before (100% by construction); metrics a card lists are checked against its class count."""


@dataclass
class TaskCard:
    task: str
    version: str
    type: str
    description: str = ""
    dataset: dict = field(default_factory=dict)     # path (under --data-root), formats, builtin
    classes: Any = "folder"                          # "clip_benchmark:<key>", "folder" or a list
    class_subset: Any = None                         # "clip_benchmark:<key>" or list of indices
    templates: Any = "open_clip:openai_imagenet"     # named set or list of "... {c} ..." strings
    metrics: list = field(default_factory=lambda: DefaultMetrics(["top1", "top5"]))
    expected_samples: int | None = None
    expected_captions: int | None = None
    paper: dict | None = None                        # {table: ..., column: ...}
    tasks: list = field(default_factory=list)        # suites: member task names
    source: str = ""                                 # file the card came from

    @property
    def is_suite(self) -> bool:
        return self.type == "suite"


# field -> (required, accepted types)
_SCHEMA: dict[str, tuple[bool, tuple]] = {
    "task": (True, (str,)), "version": (True, (str, int)), "type": (True, (str,)),
    "description": (False, (str,)), "dataset": (False, (dict,)), "classes": (False, (str, list)),
    "class_subset": (False, (str, list, type(None))), "templates": (False, (str, list)),
    "metrics": (False, (list,)), "expected_samples": (False, (int, type(None))),
    "expected_captions": (False, (int, type(None))), "paper": (False, (dict, type(None))),
    "tasks": (False, (list,)),
}


def parse_card(data: Any, source: str = "<card>") -> TaskCard:
    if not isinstance(data, dict):
        raise UtaBenchError(f"task card {source}: expected a mapping of fields, got {type(data).__name__}")
    for name, (required, types) in _SCHEMA.items():
        if name not in data:
            if required:
                raise UtaBenchError(f"task card {source}: field '{name}' is missing "
                                    f"(expected {' or '.join(t.__name__ for t in types)})")
            continue
        if not isinstance(data[name], types) or isinstance(data[name], bool):
            raise UtaBenchError(f"task card {source}: field '{name}' must be "
                                f"{' or '.join(t.__name__ for t in types)}, got {type(data[name]).__name__}")
    unknown = sorted(set(data) - set(_SCHEMA))
    if unknown:
        raise UtaBenchError(f"task card {source}: unknown field '{unknown[0]}'")
    if data["type"] not in TASK_TYPES:
        raise UtaBenchError(f"task card {source}: field 'type' must be one of {', '.join(TASK_TYPES)}")
    if data["type"] == "suite" and not data.get("tasks"):
        raise UtaBenchError(f"task card {source}: field 'tasks' must list the suite's tasks")
    if isinstance(data.get("metrics"), list):        # clip_benchmark's acc1/acc5 etc. -> top1/top5 (metricnames)
        from uta_bench.metricnames import from_clip_benchmark

        data = {**data, "metrics": [from_clip_benchmark(m) if isinstance(m, str) else m for m in data["metrics"]]}
    _check_content(data, source)
    kw = {f.name: data[f.name] for f in fields(TaskCard) if f.name in data}
    kw["version"] = str(kw["version"])
    return TaskCard(**kw, source=source)


CLASSIFICATION_METRIC = re.compile(r"top([1-9][0-9]*)")
RETRIEVAL_METRIC = re.compile(r"(image|text)_retrieval_recall@([1-9][0-9]*)")
TEMPLATE_SETS = ("open_clip:openai_imagenet", "open_clip:simple_imagenet", "clip_benchmark:<dataset>", "dataset")


def _check_content(data: dict, source: str) -> None:
    """Values, not just types: templates, metrics (and k against a listed class count), at parse time,
    so a bad card fails before any model loads or image is encoded."""
    def bad(name, msg):
        return UtaBenchError(f"task card {source}: field '{name}' {msg}")

    kind = data["type"]
    if kind == "suite":
        return
    templates = data.get("templates")
    if isinstance(templates, list):
        if not templates:
            raise bad("templates", "is an empty list; give strings containing {c} (the class name)")
        for t in templates:
            if not isinstance(t, str):
                raise bad("templates", f"must be strings containing {{c}} (the class name), got {t!r}")
            try:
                rendered = t.format(c="\x00")
            except (KeyError, IndexError, ValueError, AttributeError):
                rendered = None
            if rendered is None or "\x00" not in rendered:
                raise bad("templates", f"entry {t!r} must contain {{c}} (the class name) and no other "
                                       "{...} placeholder (write {{ }} for literal braces)")
    elif isinstance(templates, str) and templates != "dataset" and not templates.startswith(
            ("open_clip:", "clip_benchmark:")):
        raise bad("templates", f"{templates!r} is not a template set; use one of {', '.join(TEMPLATE_SETS)} "
                               "or a list of strings containing {c}")
    metrics = data.get("metrics", ["top1", "top5"] if kind == "classification" else None)
    if metrics is None:
        return
    pattern, accepted = ((CLASSIFICATION_METRIC, "top1, top5, ... topK") if kind == "classification" else
                         (RETRIEVAL_METRIC, "image_retrieval_recall@K, text_retrieval_recall@K"))
    if not metrics:
        raise bad("metrics", f"is an empty list; give {accepted}")
    for m in metrics:
        if kind == "classification" and m == "mean_per_class_recall":
            continue                                  # measured for every classification task anyway
        if not isinstance(m, str) or not pattern.fullmatch(m):
            raise bad("metrics", f"has {m!r}; a {kind} task measures {accepted} (K >= 1)")
    classes = data.get("classes")
    if kind == "classification" and isinstance(classes, list):
        n = len(data["class_subset"]) if isinstance(data.get("class_subset"), list) else len(classes)
        check_topk(metrics, n, source)


def check_topk(metrics, n_classes: int, source: str) -> None:
    """top-K needs K <= number of classes (else it is 100% by construction, not a measurement)."""
    if isinstance(metrics, DefaultMetrics):
        return
    for m in metrics:
        match = CLASSIFICATION_METRIC.fullmatch(str(m))
        if match and int(match.group(1)) > n_classes:
            raise UtaBenchError(f"task card {source}: field 'metrics' has {m!r} but the task has {n_classes} "
                                f"classes; use top-K with K <= {n_classes}")


def load_card_file(path: str | Path) -> TaskCard:
    import yaml

    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UtaBenchError(f"task card {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                            f"{e.start}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UtaBenchError(f"task card {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_card(data, str(path))


def card_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("UTA_BENCH_TASKS", "").split(os.pathsep) if p]
    root = repo_root()
    if root:
        dirs.append(root / "tasks")
    return [d for d in dirs if d.is_dir()]


def all_cards() -> dict[str, TaskCard]:
    cards: dict[str, TaskCard] = {}
    for d in card_dirs():
        for f in sorted(d.glob("*.yaml")):
            card = load_card_file(f)
            cards.setdefault(card.task, card)
    return cards


def get_card(name: str) -> TaskCard:
    """A registered card by name, a card file path, or an ad-hoc card for an ImageFolder path."""
    p = Path(name).expanduser()
    if name.endswith((".yaml", ".yml")) and p.is_file():
        return load_card_file(p)
    if p.is_dir():
        return TaskCard(task=f"folder:{p.resolve().name}", version="adhoc", type="classification",
                        description=f"ImageFolder at {p.resolve()}",
                        dataset={"path": str(p.resolve()), "formats": ["imagefolder"]}, source=str(p))
    cards = all_cards()
    if name not in cards:
        if os.sep in name or name.startswith("."):
            raise UtaBenchError(f"task path {name} does not exist; give an ImageFolder directory, "
                                "a card .yaml, or a task name")
        raise suggest(name, cards, "task")
    return cards[name]


def expand(names: list[str]) -> list[TaskCard]:
    """Resolve names (suites expanded, duplicates dropped, order kept)."""
    out: list[TaskCard] = []
    seen: set[str] = set()
    for n in names:
        card = get_card(n)
        members = expand(card.tasks) if card.is_suite else [card]
        for c in members:
            if c.task not in seen:
                seen.add(c.task)
                out.append(c)
    return out
