"""LLaVA-format training data: loading, batching, and generated sample data from package-shipped photos.

Training files are LLaVA's own JSON (a list of ``{"id", "image", "conversations"}``; ``image`` relative
to an image folder), as in ``blip_laion_cc_sbu_558k.json`` / ``llava_instruct_158k.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from uta_bench.errors import NotFoundError, UtaBenchError
from uta_bench.llava.conversation import IMAGE_TOKEN, tokenize


def load_llava_json(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"LLaVA data file {path} not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UtaBenchError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); expected LLaVA's "
                            "list of {{id, image, conversations}}") from None
    if not isinstance(data, list) or not data:
        raise UtaBenchError(f"{path}: expected a non-empty JSON list of LLaVA samples")
    for i, s in enumerate(data):
        if not isinstance(s, dict) or not isinstance(s.get("conversations"), list):
            raise UtaBenchError(f"{path}: sample {i} has no 'conversations' list")
    return data


class LlavaDataset(torch.utils.data.Dataset):
    def __init__(self, samples: list[dict], image_root: str | Path | None, preprocess, tokenizer,
                 template: str, max_length: int = 2048):
        self.samples, self.preprocess, self.tokenizer = samples, preprocess, tokenizer
        self.template, self.max_length = template, max_length
        self.image_root = Path(image_root) if image_root else None
        missing = [s["image"] for s in samples if "image" in s
                   and (self.image_root is None or not (self.image_root / s["image"]).is_file())]
        if missing:
            raise NotFoundError(f"{len(missing)} images missing under {self.image_root} (first: {missing[0]}); "
                                "pass the image folder the JSON's 'image' paths are relative to")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from PIL import Image

        s = self.samples[i]
        conv = s["conversations"]
        if "image" in s and not any(IMAGE_TOKEN in c.get("value", "") for c in conv[:1]):
            conv = [{**conv[0], "value": IMAGE_TOKEN + "\n" + conv[0]["value"]}] + conv[1:]
        if "image" not in s and any(IMAGE_TOKEN in c.get("value", "") for c in conv):
            raise UtaBenchError(f"sample {s.get('id', i)} has <image> but no 'image' file")
        tok = tokenize(conv, self.template, self.tokenizer, max_length=self.max_length)
        image = None
        if "image" in s:
            with Image.open(self.image_root / s["image"]) as im:
                image = self.preprocess(im.convert("RGB"))
        return {"input_ids": tok["input_ids"], "labels": tok["labels"], "image": image}


def collate(batch: list[dict]) -> dict:
    imgs = [b["image"] for b in batch if b["image"] is not None]
    return {"input_ids": [b["input_ids"] for b in batch], "labels": [b["labels"] for b in batch],
            "images": torch.stack(imgs) if imgs else None}


# ---------------------------------------------------------------------- generated sample data
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")
SKIMAGE_CAPTIONS = {   # scikit-image photo -> caption written for it
    "astronaut": "An astronaut in a white spacesuit smiles in front of an American flag.",
    "chelsea": "A ginger tabby cat looks to the side with green eyes.",
    "coffee": "A cup of coffee with latte art sits on a saucer with a spoon.",
    "rocket": "A rocket stands on its launch pad under a blue sky.",
    "hubble_deep_field": "Many colourful galaxies shine against the black of deep space.",
    "retina": "A photograph of the back of a human eye shows red blood vessels.",
    "moon": "A grey close-up of the surface of the moon covered in craters.",
    "coins": "Many old coins lie in rows on a grey background.",
}


def tuxpaint_available() -> bool:
    return TUXPAINT_STAMPS.is_dir() and any(TUXPAINT_STAMPS.rglob("*.png"))


def _tuxpaint_caption(txt: Path) -> str | None:
    for line in txt.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and "=" not in line and len(line.split()) >= 2:   # first untranslated (English) line
            return line
    return None


def caption_sources(source: str = "auto", limit: int = 16) -> list[tuple[str, object, str]]:
    """-> [(name, PIL RGB image, caption)]. ``source``: tuxpaint | skimage | auto (tuxpaint if installed)."""
    from PIL import Image

    if source == "auto":
        source = "tuxpaint" if tuxpaint_available() else "skimage"
    out = []
    if source == "tuxpaint":
        if not tuxpaint_available():
            raise NotFoundError(f"no tuxpaint stamps under {TUXPAINT_STAMPS}: apt-get install tuxpaint-stamps-default")
        pairs = [(p, _tuxpaint_caption(p.with_suffix(".txt"))) for p in sorted(TUXPAINT_STAMPS.rglob("*.png"))
                 if p.with_suffix(".txt").is_file()]
        pairs = [(p, c) for p, c in pairs if c]
        step = max(1, len(pairs) // limit)
        for p, cap in pairs[::step][:limit]:
            with Image.open(p) as im:
                rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            out.append((p.relative_to(TUXPAINT_STAMPS).with_suffix("").as_posix().replace("/", "_"),
                        Image.alpha_composite(bg, rgba).convert("RGB"), cap))
    elif source == "skimage":
        from uta_bench.data.sample import to_rgb
        from uta_bench.optional import require

        skimage_data = require("skimage.data", "LLaVA sample data from scikit-image photos")
        for name, cap in list(SKIMAGE_CAPTIONS.items())[:limit]:
            out.append((name, Image.fromarray(to_rgb(getattr(skimage_data, name)())), cap))
    else:
        raise UtaBenchError(f"unknown sample source {source!r}; use tuxpaint, skimage or auto")
    return out


STAGE1_PROMPTS = ("Describe the image concisely.", "Give a brief description of the picture.",
                  "What is in the photo?")
STAGE2_QUESTIONS = (("What is shown in this image?", "{cap}"),
                    ("Describe the image in detail.", "The image shows the following. {cap} "
                     "The subject is drawn clearly in the centre of the picture."),
                    ("What could this picture be used for?", "It could illustrate this: {cap}"))


def make_llava_sample(root: str | Path, source: str = "auto", limit: int = 16, size: int = 96) -> dict:
    """Write ``images/``, ``pretrain.json`` (stage 1 captions) and ``instruct.json`` (stage 2 multi-turn
    conversations) in LLaVA's format; returns paths and the source used."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    items = caption_sources(source, limit)
    pre, inst = [], []
    for i, (name, img, cap) in enumerate(items):
        rel = f"{name}.jpg"
        img.resize((size, size)).save(root / "images" / rel, quality=92)
        pre.append({"id": name, "image": rel, "conversations": [
            {"from": "human", "value": STAGE1_PROMPTS[i % len(STAGE1_PROMPTS)] + "\n" + IMAGE_TOKEN},
            {"from": "gpt", "value": cap}]})
        conv = []
        for j, (q, a) in enumerate(STAGE2_QUESTIONS[:2] if i % 2 else STAGE2_QUESTIONS):
            conv.append({"from": "human", "value": (IMAGE_TOKEN + "\n" if j == 0 else "") + q})
            conv.append({"from": "gpt", "value": a.format(cap=cap)})
        inst.append({"id": name, "image": rel, "conversations": conv})
    (root / "pretrain.json").write_text(json.dumps(pre, indent=1))
    (root / "instruct.json").write_text(json.dumps(inst, indent=1))
    return {"root": root, "images": root / "images", "pretrain": root / "pretrain.json",
            "instruct": root / "instruct.json", "source": source if source != "auto" else
            ("tuxpaint" if tuxpaint_available() else "skimage"), "n": len(items)}
