"""Classification parity with clip_benchmark on a model that is NOT at chance: the demo's CLIP teacher,
trained contrastively for a few steps on the demo world. Per-sample top-5 predictions and logits must
agree (a label-mapping or class-order bug cannot hide behind equal accuracy counts)."""
from __future__ import annotations

import pytest
import torch

from zs_helpers import cb_classification, rows, write_card


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    from uta_bench.demo import world as W
    from uta_bench.demo.teacher import train_teacher
    from uta_bench.models.uta import internal_to_official
    from uta_bench.registry import get_card

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("trained")
    card = get_card("uta_demo")
    seen = W.seen_classes()
    world = W.render(1536, seen, card.image_size, seed=0)
    tok = open_clip.get_tokenizer(card.tokenizer.split(":", 1)[1], context_length=card.context_length)
    model, _ = train_teacher(W.to_tensor(world.images, card.mean, card.std), world.captions, tok, steps=120,
                             batch_size=128, seed=0)
    ckpt = d / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in internal_to_official(model.state_dict(), card.arch).items()}, str(ckpt))
    test = W.render(120, seen, card.image_size, seed=1000)
    W.write_imagefolder(test, d / "data" / "world", seen)
    yield d, ckpt
    torch.set_num_threads(threads)


def test_trained_model_predictions_and_logits_match_clip_benchmark(trained, tmp_path):
    from torchvision.datasets import ImageFolder

    from uta_bench.demo.world import CLASS_TEMPLATES
    from uta_bench.zeroshot.features import feature_key, image_features
    from uta_bench.models.loader import load_model
    from uta_bench.predictions import load_predictions
    from uta_bench.zeroshot.run import RunConfig, evaluate_loaded
    from uta_bench.store import ResultsStore
    from uta_bench.zeroshot.classifier import build_classifier

    d, ckpt = trained
    loaded = load_model("uta_demo", checkpoint=str(ckpt))
    root = d / "data" / "world"
    names = (root / "classnames.txt").read_text().splitlines()
    templates = list(CLASS_TEMPLATES)
    card = write_card(tmp_path, "world", type="classification",
                      dataset={"path": str(root), "formats": ["imagefolder"]}, classes="folder",
                      templates=templates, metrics=["top1", "top5"])
    run = evaluate_loaded(loaded, [str(card)], RunConfig(model="uta_demo", tasks=[str(card)], progress=False,
                                                         batch_size=16, checkpoint=str(ckpt)))
    ours = rows(run)
    preds = load_predictions(ResultsStore(), run, "world")

    ds = ImageFolder(str(root), transform=loaded.preprocess)
    cb = cb_classification(loaded, ds, names, templates)
    n, k = len(ds), len(names)
    assert n == 120 and k == 36
    assert cb["acc1"] > 5 / k, f"the model must be well above chance ({1 / k:.3f}) for this test: {cb['acc1']}"
    # per sample: same targets (label mapping), same top-5 classes in the same order
    assert preds["index"].tolist() == list(range(n))
    assert preds["target"].tolist() == cb["target"].tolist()
    cb_top5 = cb["logits"].topk(5, dim=1).indices
    assert (torch.as_tensor(preds["top5"]) == cb_top5).all()
    assert ours[("world", "top1")].value == pytest.approx(cb["acc1"], abs=1e-12)
    assert ours[("world", "top5")].value == pytest.approx(cb["acc5"], abs=1e-12)
    # logits: our classifier x our (cached) image features vs clip_benchmark's, sample by sample
    refs = [p for p, _ in ds.samples]
    feats = image_features(loaded, refs, feature_key(loaded, "parity"), batch_size=16, progress=False,
                           use_cache=False)
    logits = build_classifier(loaded, names, templates, use_cache=False).logits(feats.feats)
    assert logits.shape == cb["logits"].shape
    # logits are 100 x cosine: <= 1e-5 on the cosine scale (measured: 2.3e-7), <= 1e-4 on the x100 scale
    assert ((logits - cb["logits"]).abs() / 100).max().item() <= 1e-5
    assert (logits - cb["logits"]).abs().max().item() <= 1e-4
