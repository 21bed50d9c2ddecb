"""LLaVA model: frozen vision tower -> trainable projector -> spliced into a causal LM at ``<image>``.

No fork of the LLaVA repo: the LM is any ``AutoModelForCausalLM``; projected patch features replace each
``IMAGE_INDEX`` sentinel in the token ids and the LM runs on ``inputs_embeds``.
"""
from __future__ import annotations

import torch
from torch import nn

from uta_bench.errors import UtaBenchError
from uta_bench.llava.conversation import IGNORE_INDEX, IMAGE_INDEX

PROJECTORS = ("linear", "mlp2x_gelu")


def build_projector(kind: str, vision_dim: int, lm_dim: int) -> nn.Module:
    """``linear`` as in LLaVA v1; ``mlp2x_gelu`` as in LLaVA-1.5."""
    if kind == "linear":
        return nn.Linear(vision_dim, lm_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(vision_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))
    raise UtaBenchError(f"unknown projector {kind!r}; use one of {', '.join(PROJECTORS)}")


class LlavaModel(nn.Module):
    def __init__(self, vision: nn.Module, lm: nn.Module, projector: str = "linear"):
        super().__init__()
        self.vision = vision
        self.lm = lm
        self.projector_type = projector
        self.projector = build_projector(projector, vision.dim, lm.get_input_embeddings().embedding_dim)

    # ------------------------------------------------------------------ parameters
    def set_trainable(self, stage: int, lm_trainable: list[str] | None = None) -> list[str]:
        """Stage 1: projector only. Stage 2: projector + LM (all of it, or the parameters whose names
        contain one of ``lm_trainable``). The vision tower is always frozen. Returns trainable names."""
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.projector.parameters():
            p.requires_grad_(True)
        if stage == 2:
            for n, p in self.lm.named_parameters():
                if not lm_trainable or any(s in n for s in lm_trainable):
                    p.requires_grad_(True)
        elif stage != 1:
            raise UtaBenchError(f"unknown LLaVA stage {stage}; use 1 or 2")
        names = [n for n, p in self.named_parameters() if p.requires_grad]
        if stage == 2 and not any(n.startswith("lm.") for n in names):
            raise UtaBenchError(f"lm_trainable {lm_trainable} matches no LM parameter")
        return names

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    # ------------------------------------------------------------------ embedding
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.vision(images)                              # [B, N, Dv], no grad (frozen)
        return self.projector(feats.to(self.projector_dtype))

    @property
    def projector_dtype(self):
        return next(self.projector.parameters()).dtype

    def embed(self, input_ids: list[list[int]], images: torch.Tensor | None,
              labels: list[list[int]] | None = None):
        """-> inputs_embeds [B,L,D], attention_mask [B,L], labels [B,L] or None (right padding).

        ``images`` holds one image per ``IMAGE_INDEX`` sentinel, in reading order over the batch."""
        emb_layer = self.lm.get_input_embeddings()
        dev = emb_layer.weight.device
        n_img = sum(ids.count(IMAGE_INDEX) for ids in input_ids)
        have = 0 if images is None else images.shape[0]
        if n_img != have:
            raise UtaBenchError(f"batch has {n_img} <image> placeholders but {have} images")
        feats = self.image_features(images.to(dev)) if n_img else None
        rows, row_labels, k = [], [], 0
        for b, ids in enumerate(input_ids):
            lab = labels[b] if labels is not None else [IGNORE_INDEX] * len(ids)
            parts, part_labels, start = [], [], 0
            for pos in [i for i, t in enumerate(ids) if t == IMAGE_INDEX] + [len(ids)]:
                if pos > start:
                    parts.append(emb_layer(torch.tensor(ids[start:pos], device=dev)))
                    part_labels.append(torch.tensor(lab[start:pos], device=dev))
                if pos < len(ids):
                    f = feats[k].to(emb_layer.weight.dtype)
                    k += 1
                    parts.append(f)
                    part_labels.append(torch.full((f.shape[0],), IGNORE_INDEX, device=dev))
                start = pos + 1
            rows.append(torch.cat(parts))
            row_labels.append(torch.cat(part_labels))
        L = max(r.shape[0] for r in rows)
        D = rows[0].shape[1]
        out = rows[0].new_zeros(len(rows), L, D)
        mask = torch.zeros(len(rows), L, dtype=torch.long, device=dev)
        lab_out = torch.full((len(rows), L), IGNORE_INDEX, dtype=torch.long, device=dev)
        for b, (r, rl) in enumerate(zip(rows, row_labels)):
            out[b, :r.shape[0]] = r
            mask[b, :r.shape[0]] = 1
            lab_out[b, :r.shape[0]] = rl
        return out, mask, (lab_out if labels is not None else None)

    def forward(self, input_ids, labels, images):
        emb, mask, lab = self.embed(input_ids, images, labels)
        return self.lm(inputs_embeds=emb, attention_mask=mask, labels=lab, use_cache=False).loss

    @torch.no_grad()
    def generate(self, input_ids: list[int], image: torch.Tensor | None, max_new_tokens: int,
                 eos_token_id: int | None, pad_token_id: int | None = None) -> list[int]:
        """Greedy decoding of one prompt; returns the new token ids (without the EOS)."""
        images = image.unsqueeze(0) if image is not None and image.dim() == 3 else image
        emb, mask, _ = self.embed([input_ids], images)
        out = self.lm.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new_tokens,
                               do_sample=False, num_beams=1, eos_token_id=eos_token_id,
                               pad_token_id=pad_token_id if pad_token_id is not None else eos_token_id,
                               temperature=None, top_p=None, top_k=None)
        ids = out[0].tolist()
        if eos_token_id is not None and eos_token_id in ids:
            ids = ids[:ids.index(eos_token_id)]
        return ids
