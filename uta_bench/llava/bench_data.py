"""LLaVA-Bench files: reading the released layout, and writing a small generated bench in that layout.

Released layout (``liuhaotian/llava-bench-coco`` / ``llava-bench-in-the-wild``)::

    questions.jsonl      {"question_id", "image", "text", "category": conv|detail|complex}
    answers_gpt4.jsonl   {"question_id", "text", ...}            (reference answers)
    context.jsonl        COCO: {"id", "image", "captions": [...], "instances": [{"category", "bbox"}]}
                         in-the-wild: {"id", "image", "caption"}
    rule.json            {category or "llava_bench_"+category: {"role", "prompt"}}
    images/              the images named in questions.jsonl

The COCO bench as LLaVA's repo ships it (``qa90_questions.jsonl``, ``qa90_gpt4_answer.jsonl``,
``caps_boxes_coco2014_val_80.jsonl``, ``rule.json``; images from COCO val2014) is read too: those names
are accepted in place of the first three, and the image folder can be given (``--bench-images``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from uta_bench.errors import NotFoundError, UtaBenchError

FILES = ("questions.jsonl", "answers_gpt4.jsonl", "context.jsonl", "rule.json")
ALIASES = {"questions.jsonl": "qa90_questions.jsonl", "answers_gpt4.jsonl": "qa90_gpt4_answer.jsonl",
           "context.jsonl": "caps_boxes_coco2014_val_80.jsonl"}
CATEGORIES = {"conv": "conversation", "detail": "detail", "complex": "reasoning"}   # -> Table 3 columns


@dataclass
class Bench:
    root: Path
    questions: list[dict]
    references: dict            # question_id -> reference answer text
    context: dict               # image -> context record
    rules: dict
    manifest: str               # sha256 over the four files
    images: Path | None = None  # image folder (default root/images)

    def rule_for(self, q: dict) -> dict:
        """COCO bench (captions + boxes) uses rule[category] (LLaVA eval_gpt_review_visual.py); the
        in-the-wild bench uses rule['llava_bench_' + category] (eval_gpt_review_bench.py)."""
        ctx = self.context[q["image"]]
        keys = [q["category"], "llava_bench_" + q["category"]]
        if "captions" not in ctx:
            keys.reverse()
        for k in keys:
            if k in self.rules:
                return self.rules[k]
        raise UtaBenchError(f"{self.root / 'rule.json'} has no rule for category {q['category']!r}")

    def image_path(self, q: dict) -> Path:
        return (self.images or self.root / "images") / q["image"]


def _jsonl(path: Path) -> list[dict]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UtaBenchError(f"{path}:{n} is not JSON ({e.msg})") from None
    return out


def _find(root: Path, name: str) -> Path | None:
    for cand in (name, ALIASES.get(name)):
        if cand and (root / cand).is_file():
            return root / cand
    return None


def load_bench(root: str | Path, images: str | Path | None = None) -> Bench:
    root = Path(root)
    paths = {f: _find(root, f) for f in FILES}
    missing = [f for f, p in paths.items() if p is None]
    if missing:
        raise NotFoundError(f"{root} is not a LLaVA-Bench folder: missing {', '.join(missing)} "
                            "(expected the released layout: questions.jsonl, answers_gpt4.jsonl, context.jsonl, "
                            "rule.json, images/)")
    img_dir = Path(images) if images else root / "images"
    qs = _jsonl(paths["questions.jsonl"])
    for i, q in enumerate(qs):
        for k in ("question_id", "image", "text", "category"):
            if k not in q:
                raise UtaBenchError(f"{paths['questions.jsonl']} line {i + 1} has no {k!r}")
        if q["category"] not in CATEGORIES:
            raise UtaBenchError(f"question {q['question_id']}: unknown category {q['category']!r} "
                                f"(LLaVA-Bench uses {', '.join(CATEGORIES)})")
    refs = {a["question_id"]: a["text"] for a in _jsonl(paths["answers_gpt4.jsonl"])}
    ctx = {c["image"]: c for c in _jsonl(paths["context.jsonl"])}
    rules = json.loads(paths["rule.json"].read_text())
    bad = [q["question_id"] for q in qs if q["question_id"] not in refs]
    if bad:
        raise UtaBenchError(f"{len(bad)} questions have no reference answer in answers_gpt4.jsonl (first {bad[0]})")
    bad = [q["image"] for q in qs if q["image"] not in ctx]
    if bad:
        raise UtaBenchError(f"{len(bad)} images have no context.jsonl entry (first {bad[0]})")
    bad = [q["image"] for q in qs if not (img_dir / q["image"]).is_file()]
    if bad:
        raise NotFoundError(f"{len(bad)} bench images missing under {img_dir} (first {bad[0]}); "
                            "pass the folder that holds them")
    h = hashlib.sha256()
    for f in FILES:
        h.update(paths[f].read_bytes())
    bench = Bench(root, qs, refs, ctx, rules, h.hexdigest(), img_dir)
    for q in qs:
        bench.rule_for(q)
    return bench


# ---------------------------------------------------------------------- generated bench
_RULE_HEAD = ("We would like to request your feedback on the performance of two AI assistants in response to "
              "the user question displayed above. The user asks the question on observing an image. For your "
              "reference, the visual content in the image is represented with {what}. \n")
_RULE_TAIL = ("Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each "
              "assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better "
              "overall performance.\nPlease first output a single line containing only two values indicating "
              "the scores for Assistant 1 and 2, respectively. The two scores are separated by a space.\nIn the "
              "subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any "
              "potential bias and ensuring that the order in which the responses were presented does not affect "
              "your judgment.")
_COCO_WHAT = ("five descriptive sentences describing the same image and the bounding box coordinates of each "
              "object in the scene. These coordinates are in the form of bounding boxes, represented as (x1, y1, "
              "x2, y2) with floating numbers ranging from 0 to 1. These values correspond to the top left x, top "
              "left y, bottom right x, and bottom right y")


def llava_rules() -> dict:
    """The LLaVA judging rules (the prompts of LLaVA's ``rule.json``) for the three bench categories."""
    coco = {"role": "Assistant", "prompt": _RULE_HEAD.format(what=_COCO_WHAT) + _RULE_TAIL}
    wild = {"role": "Assistant", "prompt": _RULE_HEAD.format(what="a few sentences describing the image")
            + _RULE_TAIL}
    return {**{c: coco for c in CATEGORIES}, **{f"llava_bench_{c}": wild for c in CATEGORIES}}


_QUESTIONS = {"conv": ("What is shown in the image?", "The image shows this: {cap}"),
              "detail": ("Describe the following image in detail.",
                         "{cap} It is drawn in the middle of a plain background and fills most of the picture."),
              "complex": ("Why might someone have made this picture?",
                          "Someone probably made it to show the following: {cap} Pictures like this help "
                          "people recognise the object.")}


def make_llava_bench(root: str | Path, source: str = "auto", n_images: int = 2, offset: int = 8,
                     size: int = 96) -> Path:
    """Write a small bench in the released COCO layout: per image one question of each category, reference
    answers and captions from the image's description, one box per image from its alpha mask (tuxpaint) or
    the whole frame (photos). ``offset`` skips the first images so the bench differs from training data."""
    import numpy as np

    from uta_bench.llava.data import caption_sources

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    items = caption_sources(source, offset + n_images)[offset:offset + n_images]
    if len(items) < n_images:
        items = caption_sources(source, n_images)[:n_images]
    qs, refs, ctx, qid = [], [], [], 0
    for name, img, cap in items:
        file = f"{name}.jpg"
        arr = np.asarray(img.convert("L"))
        ys, xs = np.nonzero(arr < 250)
        h, w = arr.shape
        bbox = ([round(xs.min() / w, 3), round(ys.min() / h, 3), round((xs.max() + 1) / w, 3),
                 round((ys.max() + 1) / h, 3)] if len(xs) else [0.0, 0.0, 1.0, 1.0])
        img.resize((size, size)).save(root / "images" / file, quality=92)
        ctx.append({"id": name, "image": file, "captions": [cap],
                    "instances": [{"category": name.split("_")[-1], "bbox": bbox}]})
        for cat, (q, a) in _QUESTIONS.items():
            qs.append({"question_id": qid, "image": file, "text": q, "category": cat})
            refs.append({"question_id": qid, "text": a.format(cap=cap), "answer_id": f"ref{qid}",
                         "model_id": "reference"})
            qid += 1
    for fname, rows in (("questions.jsonl", qs), ("answers_gpt4.jsonl", refs), ("context.jsonl", ctx)):
        (root / fname).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "rule.json").write_text(json.dumps(llava_rules(), indent=1))
    return root
