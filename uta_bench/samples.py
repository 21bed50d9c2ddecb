"""`--log-samples`: one JSON object per evaluated sample, from the predictions a zero-shot run keeps.

Classification: ``doc_id`` (the image's path relative to the data root; a tar member as
``shard.tar/member``), ``index`` (its position in the task's listing), ``target`` {index, class},
``top5`` [{index, class, score}] (cosine logits, best first), ``correct`` (top-1, 0/1).
Retrieval: ``doc_id``, ``index``, ``n_captions``, ``text_retrieval_rank`` (best rank of the image's
captions among all captions, 0 = first), ``image_retrieval_ranks`` (each caption's rank of the image
among all images) and ``correct`` (text retrieval recall@1 of the image, 0/1).
"""
from __future__ import annotations

import numpy as np


def _np(x):
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def sample_lines(res, root) -> list[dict]:
    """The JSONL objects of one task result (:class:`uta_bench.zeroshot.tasks.TaskResult`)."""
    ids = sample_ids(res.data, root)
    p = {k: _np(v) for k, v in res.predictions.items()}
    if "top5" in p:
        return _classification(p, ids, res.classnames or [])
    return _retrieval(p, ids)


def sample_ids(data, root) -> list[str]:
    """One id per listed sample (``predictions["index"]`` points into it): its file path relative to the
    data root (a tar member as ``shard.tar/member``), or the path as listed when it is outside the root."""
    import os

    base = os.path.abspath(root)
    out = []
    for ref in data.refs:
        path = os.path.abspath(str(getattr(ref, "tar", ref)))
        rel = os.path.relpath(path, base) if path.startswith(base + os.sep) else path
        out.append(f"{rel}/{ref.name}" if hasattr(ref, "tar") else rel)
    return out


def _classification(p: dict, ids: list[str], names: list[str]) -> list[dict]:
    out = []
    scores = p.get("top5_score")
    for j, i in enumerate(p["index"].tolist()):
        t = int(p["target"][j])
        top = [{"index": int(c), "class": names[int(c)] if int(c) < len(names) else None,
                "score": None if scores is None else float(scores[j][r])} for r, c in enumerate(p["top5"][j])]
        out.append({"doc_id": ids[i], "index": int(i), "target": {"index": t, "class": names[t] if t < len(names)
                                                                   else None},
                    "top5": top, "correct": int(p["correct1"][j])})
    return out


def _retrieval(p: dict, ids: list[str]) -> list[dict]:
    per_image: dict[int, list[int]] = {}
    for cap, img in enumerate(p["text_image"].tolist()):
        per_image.setdefault(int(img), []).append(int(p["t2i_rank"][cap]))
    out = []
    for j, i in enumerate(p["index"].tolist()):
        ranks = per_image.get(j, [])
        best = int(p["i2t_rank"][j])
        out.append({"doc_id": ids[i], "index": int(i), "n_captions": len(ranks), "text_retrieval_rank": best,
                    "image_retrieval_ranks": ranks, "correct": int(best == 0)})
    return out
