"""bf16 vs fp32 zero-shot encoding on CPU, side by side in one run, plus top-1 agreement.

Throughput: the same image batch / prompt batch through ``load_model(..., precision="fp32")`` and
``precision="bf16"`` (what `--precision bf16` runs), interleaved rep by rep so both see the same machine
load; the median of ``--reps`` is used. Agreement: fp32 vs bf16 top-1 over generated demo-world images
with a 36-class zero-shot classifier (the same demo model for both precisions; its fp32 predictions
are spread over several classes, not a constant).

    python benchmarks/bf16_cpu.py [--model uta_b16] [--images 8] [--texts 32] [--reps 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def throughput(model: str, n_images: int, n_texts: int, reps: int) -> dict:
    from uta_bench.models.loader import load_model

    from uta_bench.models.precision import prepare_for_inference

    models = {p: load_model(model, precision=p, pretrained=False) for p in ("fp32", "bf16")}
    for m in models.values():           # what the zero-shot runner does after loading
        prepare_for_inference(m)
    models["bf16 autocast only"] = load_model(model, precision="bf16", pretrained=False)   # before this change
    lm = models["fp32"]
    size = lm.card.image_size if isinstance(lm.card.image_size, int) else lm.card.image_size[0]
    images = torch.randn(n_images, 3, size, size, generator=torch.Generator().manual_seed(0))
    tokens = lm.tokenizer([f"a photo of a number {i}, a kind of thing." for i in range(n_texts)])
    out = {}
    for kind, batch, fn in (("image", images, "encode_image"), ("text", tokens, "encode_text")):
        times = {p: [] for p in models}
        for p, m in models.items():         # warm-up (kernel selection, weight casts done at load)
            getattr(m, fn)(batch)
        for _ in range(reps):
            for p, m in models.items():
                times[p].append(_timed(lambda: getattr(m, fn)(batch)))
        out[kind] = {p: len(batch) / statistics.median(t) for p, t in times.items()}
    out["precision_run"] = {p: models[p].precision_run for p in ("fp32", "bf16")}
    return out


def agreement(n: int = 600) -> tuple[float, int]:
    """(share of images with the same top-1 in fp32 and bf16, #classes fp32 predicts) on the demo model."""
    import numpy as np
    from PIL import Image

    from uta_bench.demo import world as W
    from uta_bench.models.loader import load_model
    from uta_bench.models.precision import prepare_for_inference
    from uta_bench.models.uta import UTAModel, internal_to_official
    from uta_bench.zeroshot.classifier import build_classifier

    torch.manual_seed(0)
    arch = "uta_demo_p8"
    model = UTAModel(arch)
    with torch.no_grad():       # unit-scale head (timm's 1e-3 init makes all images look alike)
        model.visual.head.weight.normal_(0, model.visual.head.weight.shape[1] ** -0.5)
    import tempfile
    from pathlib import Path

    from safetensors.torch import save_file

    names, seen = W.class_names(), W.seen_classes()
    world = W.render(n, seen, 32, seed=1000)
    preds = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "demo.safetensors"
        save_file({k: v.contiguous() for k, v in internal_to_official(model.state_dict(), arch).items()}, str(path))
        for p in ("fp32", "bf16"):
            lm = load_model("uta_demo", checkpoint=str(path), precision=p)
            prepare_for_inference(lm)
            clf = build_classifier(lm, [names[k] for k in seen], W.CLASS_TEMPLATES, use_cache=False, progress=False)
            x = torch.stack([lm.preprocess(Image.fromarray(im)) for im in world.images])
            preds[p] = clf.logits(lm.encode_image(x)).argmax(1).numpy()
    return float(np.mean(preds["fp32"] == preds["bf16"])), len(set(preds["fp32"].tolist()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="uta_b16")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--texts", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from uta_bench.models.precision import cpu_bf16_support

    print(f"CPU: {cpu_bf16_support()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    r = throughput(args.model, args.images, args.texts, args.reps)
    print(f"{args.model} (random init), precision_run {r['precision_run']}")
    for kind in ("image", "text"):
        f, b, old = r[kind]["fp32"], r[kind]["bf16"], r[kind]["bf16 autocast only"]
        print(f"{kind:5s} encoding: fp32 {f:8.2f}/s   bf16 {b:8.2f}/s   (bf16 autocast only, without "
              f"bf16-stored weights: {old:8.2f}/s = {old / f:.2f}x fp32)")
    print(f"bf16 image encoding: {r['image']['bf16'] / r['image']['fp32']:.2f}x fp32")
    print(f"bf16 text encoding: {r['text']['bf16'] / r['text']['fp32']:.2f}x fp32")
    agree, k = agreement()
    print(f"top-1 agreement bf16 vs fp32: {100 * agree:.1f}% (demo model, 600 generated images, "
          f"fp32 predicts {k} of 36 classes)")


if __name__ == "__main__":
    main()
