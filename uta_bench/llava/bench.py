"""``uta-bench run llava-bench``: greedy answers -> judge reviews -> LLaVA relative scores -> store.

Relative score (LLaVA ``summarize_gpt_review.py``, same formula as lmms-eval's ``llava_aggregation``):
per category, the mean score pair (reference, model) is rounded to 3 decimals and the score is
``mean(model) / mean(reference) * 100`` rounded to 1 decimal. Overall is the same ratio over all questions
pooled (LLaVA's ``all`` row), not the mean of the three categories. Unlike LLaVA / lmms-eval, a review
whose scores cannot be parsed is an error, never a silent ``[-1, -1]`` averaged in.

Every answer and review is appended to JSONL files as soon as it exists; a rerun with the same output
directory re-uses them (answers if the model/bench/generation settings match, reviews if the judge
identity and prompt hash match).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.llava.bench_data import CATEGORIES, Bench, load_bench
from uta_bench.llava.judge import JudgeError, parse_scores, prompt_hash, review_content

TASK, TASK_VERSION = "llava_bench", "1"
COLUMNS = {"conversation": "Conversation", "detail": "Detail", "reasoning": "Reasoning", "overall": "Overall"}


def relative_scores(reviews: list[dict]) -> dict:
    """reviews: [{"category": conv|detail|complex, "scores": [ref, model]}] -> {metric: {...}}."""
    groups: dict[str, list] = {m: [] for m in COLUMNS}
    for r in reviews:
        groups[CATEGORIES[r["category"]]].append(r["scores"])
        groups["overall"].append(r["scores"])
    out = {}
    for metric, pairs in groups.items():
        if not pairs:
            continue
        ref = round(sum(p[0] for p in pairs) / len(pairs), 3)
        mod = round(sum(p[1] for p in pairs) / len(pairs), 3)
        if ref == 0:
            raise UtaBenchError(f"{metric}: mean reference score is 0; the judge output is unusable")
        out[metric] = {"relative": round(mod / ref * 100, 1), "ref_mean": ref, "model_mean": mod, "n": len(pairs)}
    return out


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break           # a line cut by a crash: drop it and everything after (they are redone)
    return rows


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class BenchConfig:
    llava: str                       # stage-2 output directory
    bench: str                       # LLaVA-Bench folder (released layout)
    bench_images: str | None = None  # image folder if not <bench>/images (e.g. COCO val2014)
    judge: str | None = None         # hf:NAME
    judge_url: str | None = None
    judge_model: str = "gpt-4-0314"
    judge_key_env: str = "OPENAI_API_KEY"
    judge_retries: int = 5
    judge_backoff: float = 2.0
    judge_max_tokens: int = 1024     # LLaVA's review max_tokens
    template: str | None = None      # default: the recipe's template
    max_new_tokens: int = 1024       # LLaVA model_vqa default
    output: str | None = None        # answers / reviews folder; default under $UTA_BENCH_HOME
    store: str | None = None
    device: str = "auto"             # auto: cuda when available (uta_bench.resources)
    limit: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)


def generate_answers(model, tok, loaded, bench: Bench, template: str, max_new_tokens: int, path: Path,
                     questions: list[dict], progress: bool = True) -> dict:
    """Append missing answers to ``path``; returns question_id -> answer row."""
    from PIL import Image

    from uta_bench.llava.conversation import IMAGE_TOKEN, tokenize
    from uta_bench.progress import progress_bar

    done = {r["question_id"]: r for r in _read_jsonl(path)}
    todo = [q for q in questions if q["question_id"] not in done]
    with progress_bar(progress and bool(todo), len(todo), "llava-bench answers", "answer") as advance:
        for q in todo:
            ids = tokenize([{"from": "human", "value": f"{IMAGE_TOKEN}\n{q['text']}"}], template, tok,
                           generation=True)["input_ids"]
            with Image.open(bench.image_path(q)) as im:
                image = loaded.preprocess(im.convert("RGB"))
            new = model.generate(ids, image, max_new_tokens, tok.eos_token_id, tok.pad_token_id)
            row = {"question_id": q["question_id"], "prompt": q["text"],
                   "text": tok.decode(new, skip_special_tokens=True).strip(),
                   "answer_id": f"a{q['question_id']}", "model_id": "llava-uta-bench", "metadata": {}}
            _append(path, row)
            done[q["question_id"]] = row
            advance(1)
    return done


def judge_answers(judge, bench: Bench, answers: dict, path: Path, questions: list[dict],
                  progress: bool = True) -> list[dict]:
    """Append missing reviews to ``path``; raises JudgeError (after keeping all finished reviews)."""
    from uta_bench.progress import progress_bar

    done = {r["question_id"]: r for r in _read_jsonl(path)}
    todo = [q for q in questions if q["question_id"] not in done]
    with progress_bar(progress and bool(todo), len(todo), "llava-bench judge", "review") as advance:
        for q in todo:
            content = review_content(q["text"], bench.context[q["image"]], bench.references[q["question_id"]],
                                     answers[q["question_id"]]["text"], bench.rule_for(q))
            reply = judge.complete(content)
            try:
                scores = parse_scores(reply)
            except JudgeError as e:
                _append(path.parent / path.name.replace("reviews-", "unparsable-"), {"question_id": q["question_id"], "content": reply})
                raise JudgeError(f"question {q['question_id']}: {e}; kept {len(done)} reviews in {path}; "
                                 "rerun to resume (a stronger judge may be needed)") from None
            row = {"question_id": q["question_id"], "category": q["category"], "content": reply,
                   "scores": list(scores)}
            _append(path, row)
            done[q["question_id"]] = row
            advance(1)
    return [done[q["question_id"]] for q in questions]


def paper_row(card) -> str | None:
    """Table 3 row the vision tower's model card declares, or None."""
    from uta_bench.paper.mapping import card_paper_row

    return card_paper_row(card, "3")


def run_llava_bench(cfg: BenchConfig) -> tuple[str, dict]:
    """-> (run id, relative scores)."""
    from uta_bench.llava.judge import make_judge
    from uta_bench.llava.train import CONFIG_NAME, load_trained
    from uta_bench.paths import atomic_write_text, home
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.resources import resolve
    from uta_bench.store import Metric, ResultsStore, RunInfo

    res = resolve(cfg.device, None, None)                        # answers one question at a time
    cfg = dataclasses.replace(cfg, device=res.device)
    bench = load_bench(cfg.bench, cfg.bench_images)             # cheap checks first
    judge_kw = ({"retries": cfg.judge_retries, "backoff": cfg.judge_backoff, "max_tokens": cfg.judge_max_tokens}
                if cfg.judge_url else {"max_new_tokens": cfg.judge_max_tokens})
    judge = make_judge(cfg.judge, cfg.judge_url, cfg.judge_model, cfg.judge_key_env, **judge_kw)
    llava_dir = Path(cfg.llava)
    if not (llava_dir / CONFIG_NAME).is_file():
        raise UtaBenchError(f"{llava_dir} is not a finished LLaVA training output (no {CONFIG_NAME})")
    summary = json.loads((llava_dir / CONFIG_NAME).read_text())
    template = cfg.template or summary["recipe"]["template"]
    questions = bench.questions[:cfg.limit] if cfg.limit else bench.questions
    from uta_bench.checkpoint import sha256_file

    answer_cfg = {"llava": str(llava_dir.resolve()), "weights": sha256_file(llava_dir / "trainable.safetensors"),
                  "bench": bench.manifest, "template": template, "max_new_tokens": cfg.max_new_tokens,
                  "decoding": "greedy"}
    out = Path(cfg.output) if cfg.output else home() / "llava_bench" / _key(answer_cfg)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "answers_config.json"
    if meta.is_file() and json.loads(meta.read_text()) != answer_cfg:
        raise UtaBenchError(f"{out} holds answers of another model/bench/setting; use a new --output")
    atomic_write_text(meta, json.dumps(answer_cfg, indent=1))
    model, loaded, tok, _ = load_trained(llava_dir, cfg.device)
    started = now()
    answers = generate_answers(model, tok, loaded, bench, template, cfg.max_new_tokens, out / "answers.jsonl",
                               questions, cfg.progress)
    ident = judge.identity()
    phash = prompt_hash(bench.rules)
    reviews_path = out / f"reviews-{_key({'judge': ident, 'prompt': phash})}.jsonl"
    reviews = judge_answers(judge, bench, answers, reviews_path, questions, cfg.progress)
    scores = relative_scores(reviews)
    store = ResultsStore(cfg.store)
    run = RunInfo(run_id=new_run_id(), model=summary["vision"]["name"],
                  weights_sha256=summary["vision"].get("weights_sha256"), device=cfg.device, precision="fp32",
                  seed=summary["recipe"].get("seed"), started_at=started,
                  config={"llava": answer_cfg, "recipe": summary["recipe"], "lm": summary.get("lm"),
                          "judge": ident, "judge_prompt_sha256": phash, "output": str(out),
                          "device": res.device, "auto": list(res.auto)},
                  versions=versions())
    from uta_bench.registry import get_card

    try:
        row = paper_row(get_card(summary["vision"]["name"]))
    except UtaBenchError:
        row = None
    metrics = [Metric(m, s["relative"] / 100.0, n=s["n"],
                      extra={"column": COLUMNS[m], "ref_mean": s["ref_mean"], "model_mean": s["model_mean"]})
               for m, s in scores.items()]
    store.write_task(run, TASK, metrics, task_version=TASK_VERSION, dataset_manifest=bench.manifest,
                     paper={"table": "3", "row": row},
                     extra={"judge": ident, "judge_prompt_sha256": phash, "limit": cfg.limit})
    return run.run_id, scores
