"""Pluggable LLaVA-Bench judges and LLaVA's review prompt / score parsing.

- ``OpenAIJudge``: any OpenAI-compatible ``/chat/completions`` endpoint (GPT-4 for paper parity, vLLM,
  or ``uta_bench.llava.judge_server``). Key from an environment variable, never from the command line.
  Connection errors, 429 and 5xx are retried with exponential back-off; then ``JudgeError``.
- ``HFJudge``: a local Hugging Face causal LM (``hf:NAME``), greedy. Small local judges rarely follow the
  "first line: two scores" instruction, so by default the first line is decoded under a constraint that
  only admits ``<1-10> <1-10>\\n`` (as guided decoding in vLLM would); the explanation is free text.

The review request follows LLaVA's ``eval_gpt_review_visual.py`` / ``eval_gpt_review_bench.py``: system
"You are a helpful and precise assistant for checking the quality of the answer.", temperature 0.2, the
user content built by ``review_content``; scores are parsed from the first line (``parse_scores``).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request

from uta_bench.errors import UtaBenchError

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."


class JudgeError(UtaBenchError):
    """The judge is unreachable or its reply cannot be scored."""


def review_content(question: str, context: dict, ref_answer: str, answer: str, rule: dict) -> str:
    """LLaVA's review prompt. COCO-style context (``captions`` + ``instances``) lists captions and boxes;
    in-the-wild context (``caption``) lists the caption only."""
    if "captions" in context:
        caps = "\n".join(context["captions"])
        boxes = "\n".join(f"{i['category']}: {i['bbox']}" for i in context.get("instances", []))
        ctx = f"{caps}\n\n{boxes}"
    else:
        cap = context.get("caption", "")
        ctx = "\n".join(cap) if isinstance(cap, list) else str(cap)
    role = rule["role"]
    return (f"[Context]\n{ctx}\n\n[Question]\n{question}\n\n"
            f"[{role} 1]\n{ref_answer}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n[System]\n{rule['prompt']}\n\n")


def parse_scores(review: str) -> tuple[float, float]:
    """LLaVA's rule: the first line holds exactly two numbers (reference, model), space or comma separated.
    Raises JudgeError otherwise (LLaVA / lmms-eval would record [-1, -1] and average it in)."""
    first = review.strip().split("\n")[0].replace(",", " ").split()
    try:
        if len(first) == 2:
            return float(first[0]), float(first[1])
    except ValueError:
        pass
    raise JudgeError(f"judge reply has no score pair on its first line: {review.strip()[:80]!r}")


def prompt_hash(rules: dict) -> str:
    """Hash of everything that shapes the judge's input besides the data: system prompt + rules."""
    blob = json.dumps({"system": SYSTEM, "rules": rules}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class OpenAIJudge:
    def __init__(self, url: str, model: str = "gpt-4-0314", key_env: str = "OPENAI_API_KEY",
                 temperature: float = 0.2, max_tokens: int = 1024, retries: int = 5, backoff: float = 2.0,
                 timeout: float = 300.0, sleep=time.sleep):
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.key_env, self.temperature, self.max_tokens = model, key_env, temperature, max_tokens
        self.retries, self.backoff, self.timeout, self.sleep = retries, backoff, timeout, sleep

    def identity(self) -> dict:
        return {"kind": "openai", "endpoint": self.endpoint, "model": self.model,
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def complete(self, content: str) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                           "messages": [{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": content}]}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(60.0, self.backoff * 2 ** (attempt - 1)))
            req = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    reply = json.loads(r.read().decode())
                return reply["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode(errors='replace')}"
                if e.code != 429 and e.code < 500:
                    raise JudgeError(f"judge {self.endpoint} refused the request ({last.strip()}); check "
                                     f"--judge-model and ${self.key_env}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = str(getattr(e, "reason", e))
            except (KeyError, IndexError, ValueError) as e:
                raise JudgeError(f"judge {self.endpoint} sent a reply that is not a chat completion ({e})") from None
        raise JudgeError(f"judge {self.endpoint} unreachable after {self.retries + 1} tries ({last}); "
                         "answers and scores so far are kept: fix the judge and rerun to resume")


class HFJudge:
    def __init__(self, spec: str, max_new_tokens: int = 64, constrain_scores: bool = True):
        from uta_bench.llava.lm import load_lm

        self.spec, self.max_new_tokens, self.constrain = spec, max_new_tokens, constrain_scores
        self.model, self.tok = load_lm(spec)
        self._cand = score_tokens(self.tok) if constrain_scores else {}

    def identity(self) -> dict:
        from uta_bench.llava.lm import lm_identity

        return {"kind": "hf", "lm": lm_identity(self.spec), "max_new_tokens": self.max_new_tokens,
                "constrained_score_line": self.constrain, "decoding": "greedy"}

    def complete(self, content: str, system: str = SYSTEM) -> str:
        import torch

        msgs = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{system}\n\n{content}\n"
        ids = torch.tensor([self.tok(text, add_special_tokens=False).input_ids])
        with torch.no_grad():
            return _greedy(self.model, self.tok, ids, self._cand if self.constrain else None, self.max_new_tokens)


SCORE_LINES = [f"{a} {b}\n" for a in range(1, 11) for b in range(1, 11)]
SCORE_PREFIXES = {line[:i] for line in SCORE_LINES for i in range(len(line) + 1)}


def score_tokens(tok) -> dict[int, str]:
    """Vocabulary entries made only of digits, spaces and newlines (candidates for the score line)."""
    out = {}
    for t in range(len(tok)):
        s = tok.decode([t])
        if s and all(c in "0123456789 \n" for c in s):
            out[t] = s
    return out


def _greedy(model, tok, ids, cand: dict[int, str] | None, max_new: int) -> str:
    """Greedy decoding with one KV cache. With ``cand``, the first line is restricted to tokens that keep
    the text a prefix of one of ``SCORE_LINES``; then up to ``max_new`` free tokens (the explanation)."""
    import inspect

    import torch

    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    state = {}

    def step(inp):
        out = model(input_ids=inp, use_cache=True, **{key: state.get("past")})
        state["past"] = getattr(out, key)
        return out.logits[0, -1]

    logits, head = step(ids), ""
    if cand is not None:
        for _ in range(8):
            allowed = [t for t, s in cand.items() if head + s in SCORE_PREFIXES]
            best = max(allowed, key=lambda t: float(logits[t]))
            head += cand[best]
            logits = step(torch.tensor([[best]]))
            if head in SCORE_LINES:
                break
        else:
            raise JudgeError(f"constrained score decoding did not finish: {head!r}")
    new = []
    for _ in range(max_new):
        t = int(logits.argmax())
        if t == tok.eos_token_id:
            break
        new.append(t)
        logits = step(torch.tensor([[t]]))
    return head + tok.decode(new, skip_special_tokens=True)


def make_judge(judge: str | None, url: str | None, model: str = "gpt-4-0314", key_env: str = "OPENAI_API_KEY",
               **kw):
    if bool(judge) == bool(url):
        raise UtaBenchError("pick one judge: --judge-url URL (OpenAI-compatible) or --judge hf:NAME")
    if url:
        return OpenAIJudge(url, model=model, key_env=key_env, **kw)
    if not judge.startswith("hf:"):
        raise UtaBenchError(f"--judge {judge!r}: use hf:NAME (a local HF model) or --judge-url for an endpoint")
    return HFJudge(judge[3:], **kw)
