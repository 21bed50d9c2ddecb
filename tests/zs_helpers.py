"""Helpers for the zero-shot tests: a tiny random-init model, cards, clip_benchmark runs."""
from __future__ import annotations

from pathlib import Path

import torch

TEMPLATES = ["a photo of a {c}.", "a blurry drawing of the {c}."]


def tiny(seed: int = 0):
    from uta_bench.models.loader import load_model

    torch.manual_seed(seed)
    return load_model("uta_tiny", pretrained=False)


def tiny_on_one_thread(seed: int = 0):
    """Generator for a module fixture: the tiny model, with torch on one thread while the module's tests run
    (fastest for a tiny model on a shared CPU); the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny(seed)
    torch.set_num_threads(threads)


def write_card(dir_: Path, name: str, **fields) -> Path:
    import yaml

    card = {"task": name, "version": 1, **fields}
    p = Path(dir_) / f"{name}.yaml"
    p.write_text(yaml.safe_dump(card))
    return p


def cfg(tmp_path, tasks, **kw):
    from uta_bench.zeroshot.run import RunConfig

    return RunConfig(model="uta_tiny", tasks=[str(t) for t in tasks], data_root=str(tmp_path / "data"),
                     progress=False, pretrained=False, batch_size=kw.pop("batch_size", 16), **kw)


def rows(run_id: str) -> dict:
    from uta_bench.store import ResultsStore

    df = ResultsStore().df(run_id=run_id)
    return {(r.task, r.metric): r for r in df.itertuples()}


_CB_CLASSIFIERS: dict = {}


def cb_classification(loaded, dataset, classnames, templates, batch_size=16, collate=None) -> dict:
    """clip_benchmark 1.6's own zero_shot_classifier + run_classification, fp32 (amp=False: its default
    autocast is bf16 on CPU), then its top-k formula.

    Its ``accuracy()`` calls ``float()`` on a 1-element numpy array, which numpy 2.x rejects
    ("only 0-dimensional arrays can be converted"), so that one line is evaluated here with ``.item()``:
    ``correct = pred.eq(target)`` over ``output.topk(max(topk), 1, True, True)``, summed per k / n.
    """
    from clip_benchmark.metrics import zeroshot_classification as zc

    dl = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    key = (id(loaded), tuple(classnames), tuple(templates))
    if key not in _CB_CLASSIFIERS:      # its per-class loop is slow on a busy CPU: once per class list
        _CB_CLASSIFIERS[key] = zc.zero_shot_classifier(loaded.model, loaded.tokenizer, classnames, templates,
                                                       "cpu", amp=False)
    clf = _CB_CLASSIFIERS[key]
    logits, target = zc.run_classification(loaded.model, clf, dl, "cpu", amp=False)
    pred = logits.topk(5, 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    acc = {f"acc{k}": correct[:k].reshape(-1).float().sum().item() / len(target) for k in (1, 5)}
    return {**acc, "logits": logits, "target": target}


def cb_retrieval(loaded, dataset, batch_size=4) -> dict:
    from clip_benchmark.datasets.builder import image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval as zr

    dl = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                     collate_fn=image_captions_collate_fn)
    return zr.evaluate(loaded.model, dl, loaded.tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
