"""Any open_clip model by spec (issue 15 item 1): ``open_clip:ARCH/TAG``, ``open_clip:ARCH`` and
``hf-hub:ORG/NAME``, cards made on the fly from open_clip's config, through the CLI.

Oracles: clip_benchmark's zero-shot classification on the same random-init model built by open_clip itself
(``open_clip.create_model_and_transforms``), and, for the hub, open_clip loading the same repo directly.
The hub repo is written by open_clip's own config writer into a pre-populated Hugging Face cache that
huggingface_hub resolves offline (HF_HUB_OFFLINE=1, as conftest sets).
"""
from __future__ import annotations

import json
import types

import pytest
import torch

from zs_helpers import TEMPLATES, cb_classification, write_card
from uta_bench.cli.main import main
from uta_bench.data import synthetic as syn

SPEC = "open_clip:ViT-B-32/laion2b_s34b_b79k"
CLASSES = ["apple", "bicycle", "cloud", "dolphin", "kettle"]


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.fixture
def card(tmp_path):
    syn.make_imagefolder(tmp_path / "data" / "objs", CLASSES, per_class=2, size=48)
    return write_card(tmp_path, "objs", type="classification", dataset={"path": "objs", "formats": ["imagefolder"]},
                      classes="folder", templates=TEMPLATES, metrics=["top1"])


def _cb_top1(model, preprocess, tokenizer, root, limit=None) -> float:
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root), transform=preprocess)
    assert ds.classes == CLASSES
    if limit:
        ds = torch.utils.data.Subset(ds, range(limit))
    return cb_classification(types.SimpleNamespace(model=model.eval(), tokenizer=tokenizer), ds, CLASSES,
                             TEMPLATES, batch_size=8)["acc1"]


def test_open_clip_spec_random_init_matches_clip_benchmark_and_reuses_its_run(card, tmp_path, capsys, one_thread):
    """The issue's command, verbatim model spec; then `check` with the tag spelt as open_clip also accepts it
    re-uses that run (same canonical model name, same run key)."""
    import open_clip

    from uta_bench.store import ResultsStore

    code, out = cli(capsys, "run", "zeroshot", "--model", SPEC, "--random-init", "--tasks", card,
                    "--data-root", tmp_path / "data", "--limit", 8, "--no-progress", "--batch-size", 8)
    assert code == 0, out
    df = ResultsStore().df()
    assert sorted(df.metric) == ["mean_per_class_recall", "top1"]
    (row,) = df[df.metric == "top1"].itertuples()
    assert row.model == SPEC and row.init == "random" and row.n == 8 and row.weights_sha256 is None

    torch.manual_seed(0)               # what `run zeroshot --seed 0` seeds before building the model
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    cb = _cb_top1(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), tmp_path / "data" / "objs", limit=8)
    assert row.value == pytest.approx(cb, abs=1e-12)

    # the same run again, the tag spelt as open_clip also accepts it: the same model name and run key
    args = ["--random-init", "--tasks", card, "--data-root", tmp_path / "data", "--limit", 8]
    code, out = cli(capsys, "run", "zeroshot", "--model", "open_clip:ViT-B-32/LAION2B-s34b-b79k", *args,
                    "--no-progress", "--batch-size", 8)
    assert code == 0, out
    df = ResultsStore().df()
    assert df.run_id.nunique() == 2 and set(df.model) == {SPEC} and set(df.run_key) == {row.run_key}
    # the gate computes that key before evaluating and re-uses the latest stored run as the candidate
    second = (set(df.run_id) - {row.run_id}).pop()
    code, out = cli(capsys, "check", "--model", "open_clip:ViT-B-32/laion2b-s34b-b79k", *args,
                    "--against", row.run_id, "--tolerance", 0)
    flat = " ".join(out.split())
    assert code == 0, out
    assert f"re-used run {second} for objs" in flat and f"same run key {row.run_key[:12]}" in flat, out
    assert ResultsStore().df().run_id.nunique() == 2
    # filters take the spec in any spelling open_clip accepts
    code, out = cli(capsys, "results", "--model", "open_clip:ViT-B-32/LAION2B-s34b-b79k")
    assert code == 0 and row.run_id in out and second in out, out


def test_table_model_filter_checks_specs(capsys):
    code, out = cli(capsys, "table", "--paper", "--with-runs", "--model", "open_clip:ViT-B-32/laion2b_s34b_b78k")
    assert code == 2 and "did you mean 'laion2b_s34b_b79k'" in out, out


def test_plain_arch_random_init_equals_open_clip_model(card, tmp_path, capsys):
    """open_clip:ARCH (no tag) builds with no download at all, the same model open_clip builds."""
    import open_clip

    from uta_bench.models.loader import load_model

    torch.manual_seed(3)
    ours = load_model("open_clip:ViT-S-32", pretrained=False)
    torch.manual_seed(3)
    ref = open_clip.create_model("ViT-S-32", pretrained=None)
    assert ours.name == "open_clip:ViT-S-32" and ours.card.image_size == 224 and ours.card.embed_dim == 384
    theirs = ref.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.model.state_dict().items())
    # without --random-init there are no weights to load: one line, exit 2
    code, out = cli(capsys, "run", "zeroshot", "--model", "open_clip:ViT-S-32", "--tasks", card,
                    "--data-root", tmp_path / "data")
    assert code == 2 and "names no pretrained weights" in out and "open_clip:ViT-S-32/TAG" in out


def test_card_from_pretrained_cfg_quickgelu_and_preprocessing():
    """The on-the-fly card takes open_clip's pretrained cfg: QuickGELU for OpenAI weights, inception
    normalisation for laion2b_s32b_b82k; equal to the registered baseline cards where one exists."""
    from uta_bench.registry import get_card

    oa = get_card("open_clip:ViT-B-32/openai")
    assert oa.quick_gelu and oa.weights.open_clip_pretrained == "openai" and oa.tokenizer == "open_clip:ViT-B-32"
    from open_clip.transformer import QuickGELU

    from uta_bench.models.loader import load_model

    acts = {type(m) for m in load_model("open_clip:RN50/openai", pretrained=False).model.modules()}
    assert QuickGELU in acts and torch.nn.GELU not in acts       # built as the OpenAI weights were trained
    l14 = get_card("open_clip:ViT-L-14/laion2b_s32b_b82k")
    reg = get_card("openclip_l14")
    assert (l14.mean, l14.std, l14.image_size, l14.embed_dim) == (reg.mean, reg.std, reg.image_size, reg.embed_dim)
    assert l14.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("spec, needles", [
    ("open_clip:ViT-B-32/laion2b_s34b_b78k", ["no pretrained tag 'laion2b_s34b_b78k'",
                                             "did you mean 'laion2b_s34b_b79k'"]),
    ("open_clip:ViT-B-33/laion2b_s34b_b79k", ["unknown open_clip architecture 'ViT-B-33'", "did you mean",
                                             "'ViT-B-32'"]),
    ("open_clip:vit-b-32", ["unknown open_clip architecture 'vit-b-32'", "'ViT-B-32'"]),
    ("open_clip:ViT-B-32/", ["not a valid spec", "open_clip:ARCH/TAG"]),
    ("hf-hub:justaname", ["not a valid spec", "hf-hub:ORG/NAME"]),
    ("hf-hub:uta-test/not-cached", ["not in the Hugging Face cache"]),
])
def test_bad_specs_fail_with_one_line_and_exit_2(spec, needles, card, capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    code, out = cli(capsys, "run", "zeroshot", "--model", spec, "--random-init", "--tasks", card,
                    "--data-root", tmp_path / "data")
    assert code == 2, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    # a spec that is well-formed but cannot be loaded fails at load time, after the resources line
    # ("device cpu (auto), workers 0 (auto), batch size 64 (auto)"); a malformed one fails before it
    err = [ln for ln in lines if not ln.startswith("device ")]
    assert len(err) == 1 and err[0].startswith("error: "), out
    assert len(lines) == 1 or spec == "hf-hub:uta-test/not-cached", out
    assert "Traceback" not in out
    for n in needles:
        assert n in err[0], err[0]


def test_models_listing_explains_the_spec_syntax(capsys):
    code, out = cli(capsys, "models")
    assert code == 0
    flat = " ".join(out.split())
    assert "open_clip:ARCH/TAG" in flat and "hf-hub:ORG/NAME" in flat


# --- hf-hub:ORG/NAME from a pre-populated Hugging Face cache ---------------------------------------------

REPO_ID = "uta-test/tiny-clip"
TINY_CFG = {"embed_dim": 64,
            "vision_cfg": {"image_size": 48, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
# not open_clip's defaults, so a card that ignored the repo's preprocess_cfg would encode other pixels
PREPROCESS = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "interpolation": "bilinear", "resize_mode": "squash"}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub repo in open_clip's layout (its own config writer, safetensors weights of a random-init model)
    as a snapshot of the HF cache; huggingface_hub resolves it offline."""
    import open_clip
    from huggingface_hub import constants
    from open_clip.model import set_model_preprocess_cfg
    from open_clip.push_to_hf_hub import save_config_for_hf
    from safetensors.torch import save_file

    torch.manual_seed(7)
    model = open_clip.model.CLIP(**TINY_CFG)
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
    set_model_preprocess_cfg(model, {**PREPROCESS, "size": 48})
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_config_for_hf(model, snap / "open_clip_config.json", model_config=TINY_CFG)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snap / "open_clip_model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return snap


def test_hf_hub_spec_runs_and_equals_open_clip_loading_the_repo(hub_cache, card, tmp_path, capsys, one_thread):
    import open_clip
    from PIL import Image

    from uta_bench.checkpoint import sha256_file
    from uta_bench.models.loader import load_model
    from uta_bench.store import ResultsStore

    code, out = cli(capsys, "run", "zeroshot", "--model", f"hf-hub:{REPO_ID}", "--tasks", card,
                    "--data-root", tmp_path / "data", "--no-progress", "--batch-size", 8)
    assert code == 0, out
    df = ResultsStore().df()
    (row,) = df[df.metric == "top1"].itertuples()
    weights = hub_cache / "open_clip_model.safetensors"
    assert row.model == f"hf-hub:{REPO_ID}" and row.init == "pretrained" and row.n == 10
    assert row.weights_sha256 == sha256_file(weights)

    ref, _, ref_pre = open_clip.create_model_and_transforms(f"hf-hub:{REPO_ID}")   # open_clip, directly
    ref_tok = open_clip.get_tokenizer(f"hf-hub:{REPO_ID}")
    cb = _cb_top1(ref, ref_pre, ref_tok, tmp_path / "data" / "objs")
    assert row.value == pytest.approx(cb, abs=1e-12)

    # same pixels, same features: preprocessing and weights both come from the repo
    ours = load_model(f"hf-hub:{REPO_ID}")
    assert (ours.card.mean, ours.card.std, ours.card.interpolation, ours.card.resize_mode, ours.card.image_size) == (
        PREPROCESS["mean"], PREPROCESS["std"], "bilinear", "squash", 48)
    img = Image.open(next((tmp_path / "data" / "objs" / "cloud").iterdir())).convert("RGB")
    with torch.no_grad():
        want = torch.nn.functional.normalize(ref.eval().encode_image(ref_pre(img)[None]), dim=-1)
    got = ours.encode_image(ours.preprocess(img)[None])
    assert torch.equal(got, want)
    toks = ours.tokenizer(["a photo of a cloud."])
    assert torch.equal(toks, ref_tok(["a photo of a cloud."]))


def test_hf_hub_random_init_reads_only_the_config(hub_cache, card, tmp_path, capsys):
    """--random-init with a hub spec needs the config only: the weights file may be absent."""
    from uta_bench.models.loader import load_model

    from safetensors.torch import load_file

    weights = tmp_path / "tiny_clip.safetensors"
    (hub_cache / "open_clip_model.safetensors").rename(weights)
    loaded = load_model(f"hf-hub:{REPO_ID}", pretrained=False)
    assert loaded.card.embed_dim == 64 and loaded.weights_sha256 is None
    # --checkpoint FILE builds from the repo's config and loads the file (strict, our reader)
    ck = load_model(f"hf-hub:{REPO_ID}", checkpoint=str(weights))
    saved = load_file(str(weights))
    assert ck.weights_path == str(weights) and all(torch.equal(v, saved[k]) for k, v in ck.model.state_dict().items())
    assert not all(torch.equal(v, saved[k]) for k, v in loaded.model.state_dict().items())
    code, out = cli(capsys, "run", "zeroshot", "--model", f"hf-hub:{REPO_ID}", "--tasks", card,
                    "--data-root", tmp_path / "data")
    assert code == 2 and "no weights for hf-hub:uta-test/tiny-clip" in out
