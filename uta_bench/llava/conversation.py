"""LLaVA JSON conversations -> token ids with ``<image>`` sentinels and training labels.

A sample is LLaVA's own format: ``{"id", "image", "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}``. Templates:

- ``plain`` (LLaVA stage-1 pre-training): ``<image>`` followed by the caption and ``\\n``; only the
  caption is supervised.
- ``vicuna_v1`` (LLaVA v1): ``"{system} USER: {q} ASSISTANT: {a}</s>USER: ..."`` with the LM's own EOS
  as ``</s>``; only the answers (and their EOS) are supervised.
- ``chat``: the LM's own chat template (``tokenizer.apply_chat_template``); assistant turns supervised.

Text is cut into segments (masked prompt parts / supervised answers) and each segment is tokenized on its
own, so a prompt built for generation tokenizes exactly like the training prefix.
"""
from __future__ import annotations

from uta_bench.errors import UtaBenchError

IMAGE_TOKEN = "<image>"
IMAGE_INDEX = -200          # sentinel id, replaced by the projected patch features (LLaVA uses -200 too)
IGNORE_INDEX = -100
VICUNA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's questions.")
TEMPLATES = ("plain", "vicuna_v1", "chat")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _turns(conversations: list[dict]) -> list[tuple[str, str]]:
    turns = []
    for i, c in enumerate(conversations):
        role = ROLES.get(str(c.get("from", "")).lower())
        if role is None or "value" not in c:
            raise UtaBenchError(f"conversation turn {i} must have 'from' (human/gpt) and 'value': got {c!r}")
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            raise UtaBenchError(f"conversation turn {i} is from {c['from']!r}; turns must alternate human, gpt")
        turns.append((role, str(c["value"])))
    return turns


def segments(conversations: list[dict], template: str, tokenizer, generation: bool = False) -> list[tuple[str, bool]]:
    """-> [(text, supervised)]. ``generation``: the last turn is a question and the prompt ends where the
    assistant answer starts."""
    turns = _turns(conversations)
    if not turns:
        raise UtaBenchError("empty conversation")
    if generation and turns[-1][0] != "user":
        raise UtaBenchError("a generation prompt must end with a human turn")
    if not generation and turns[-1][0] != "assistant":
        raise UtaBenchError("a training conversation must end with a gpt turn")
    eos = tokenizer.eos_token or ""
    if template == "plain":
        if generation:
            return [(IMAGE_TOKEN, False)]
        if len(turns) != 2:
            raise UtaBenchError("the plain template takes one <image> turn and one caption turn")
        return [(IMAGE_TOKEN, False), (turns[1][1] + "\n", True)]
    if template == "vicuna_v1":
        segs, pending = [], VICUNA_SYSTEM + " "
        for role, text in turns:
            if role == "user":
                pending += f"USER: {text} ASSISTANT:"
            else:
                segs.append((pending, False))
                segs.append((f" {text}{eos}", True))
                pending = ""
        if pending:
            segs.append((pending, False))
        return segs
    if template == "chat":
        if getattr(tokenizer, "chat_template", None) is None:
            raise UtaBenchError("template 'chat' needs an LM tokenizer with a chat template; use vicuna_v1")
        msgs = [{"role": r, "content": t} for r, t in turns]
        segs, done = [], ""
        for k in range(0, len(msgs), 2):
            prompt = tokenizer.apply_chat_template(msgs[:k + 1], tokenize=False, add_generation_prompt=True)
            if not prompt.startswith(done):
                raise UtaBenchError("the LM's chat template is not prefix-stable across turns; use vicuna_v1")
            segs.append((prompt[len(done):], False))
            done = prompt
            if k + 1 < len(msgs):
                full = tokenizer.apply_chat_template(msgs[:k + 2], tokenize=False)
                if not full.startswith(done):
                    raise UtaBenchError("the LM's chat template is not prefix-stable across turns; use vicuna_v1")
                segs.append((full[len(done):], True))
                done = full
        return segs
    raise UtaBenchError(f"unknown conversation template {template!r}; use one of {', '.join(TEMPLATES)}")


def _encode(text: str, tokenizer) -> list[int]:
    ids: list[int] = []
    for i, part in enumerate(text.split(IMAGE_TOKEN)):
        if i:
            ids.append(IMAGE_INDEX)
        if part:
            ids.extend(tokenizer(part, add_special_tokens=False).input_ids)
    return ids


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and bool(getattr(tokenizer, "add_bos_token", False))


def tokenize(conversations: list[dict], template: str, tokenizer, generation: bool = False,
             max_length: int | None = None) -> dict:
    """-> {"input_ids": [...] (IMAGE_INDEX at <image>), "labels": [...] (IGNORE_INDEX where masked)}."""
    ids: list[int] = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for text, supervised in segments(conversations, template, tokenizer, generation):
        seg = _encode(text, tokenizer)
        if supervised and IMAGE_INDEX in seg:
            raise UtaBenchError("<image> may only appear in human turns")
        ids.extend(seg)
        labels.extend(seg if supervised else [IGNORE_INDEX] * len(seg))
    if max_length is not None and len(ids) > max_length:
        n_img = ids.count(IMAGE_INDEX)
        ids, labels = ids[:max_length], labels[:max_length]
        if ids.count(IMAGE_INDEX) != n_img:
            raise UtaBenchError(f"max_length {max_length} cuts off an <image>; raise model_max_length")
    return {"input_ids": ids, "labels": labels}
