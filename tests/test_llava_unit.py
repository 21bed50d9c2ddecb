"""LLaVA pieces that need no big model: aggregation (hand-worked), score parsing, review prompt, judge
retries over a real loopback HTTP server, vision-layer selection, <image> splicing, gradient checkpointing."""
from __future__ import annotations

import json

import pytest
import torch

from uta_bench.errors import UtaBenchError


def test_relative_scores_hand_worked():
    from uta_bench.llava.bench import relative_scores

    reviews = [{"category": "conv", "scores": [8, 6]}, {"category": "conv", "scores": [9, 9]},
               {"category": "detail", "scores": [7, 3]}, {"category": "detail", "scores": [8, 4]},
               {"category": "detail", "scores": [9, 5]},
               {"category": "complex", "scores": [10, 7]}, {"category": "complex", "scores": [6, 6]},
               {"category": "complex", "scores": [8, 9]}]
    s = relative_scores(reviews)
    # conv: ref mean 8.5, model 7.5 -> 7.5/8.5 = 88.235.. -> 88.2
    assert s["conversation"] == {"relative": 88.2, "ref_mean": 8.5, "model_mean": 7.5, "n": 2}
    # detail: ref 8.0, model 4.0 -> 50.0
    assert s["detail"]["relative"] == 50.0
    # complex: ref 24/3 = 8.0, model 22/3 = 7.333 (rounded to 3 decimals first) -> 91.6625 -> 91.7
    assert s["reasoning"]["model_mean"] == 7.333 and s["reasoning"]["relative"] == 91.7
    # overall pools all 8 questions: ref 65/8 = 8.125, model 49/8 = 6.125 -> 75.38.. -> 75.4,
    # not the mean of the three categories ((88.2 + 50.0 + 91.7) / 3 = 76.6)
    assert s["overall"] == {"relative": 75.4, "ref_mean": 8.125, "model_mean": 6.125, "n": 8}


@pytest.mark.parametrize("text,want", [("8 7\nBecause...", (8.0, 7.0)), ("8,7", (8.0, 7.0)),
                                       ("  9.5 10 \nok", (9.5, 10.0)), ("7, 6\n", (7.0, 6.0))])
def test_parse_scores(text, want):
    from uta_bench.llava.judge import parse_scores

    assert parse_scores(text) == want


@pytest.mark.parametrize("text", ["Assistant 1: 8\nAssistant 2: 7", "8 7 6", "", "good bad"])
def test_parse_scores_rejects(text):
    from uta_bench.llava.judge import JudgeError, parse_scores

    with pytest.raises(JudgeError, match="no score pair"):
        parse_scores(text)


def test_review_content_coco_and_wild():
    from uta_bench.llava.judge import review_content

    rule = {"role": "Assistant", "prompt": "Rate them."}
    coco = {"captions": ["A cat.", "A pet."], "instances": [{"category": "cat", "bbox": [0.1, 0.2, 0.5, 0.6]}]}
    got = review_content("What?", coco, "Ref.", "Mine.", rule)
    assert got == ("[Context]\nA cat.\nA pet.\n\ncat: [0.1, 0.2, 0.5, 0.6]\n\n[Question]\nWhat?\n\n"
                   "[Assistant 1]\nRef.\n\n[End of Assistant 1]\n\n[Assistant 2]\nMine.\n\n[End of Assistant 2]\n\n"
                   "[System]\nRate them.\n\n")
    assert review_content("Q", {"caption": "A dog."}, "r", "m", rule).startswith("[Context]\nA dog.\n\n[Question]\nQ")


class _Scripted:
    """A judge 'model' for the HTTP layer tests: replies from a script, counts calls."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def complete(self, content, system=None):
        self.calls.append((system, content))
        r = self.replies.pop(0)
        if isinstance(r, Exception):
            raise r
        return r


def test_openai_judge_roundtrip_and_errors():
    from uta_bench.llava.judge import SYSTEM, JudgeError, OpenAIJudge
    from uta_bench.llava.judge_server import serve

    model = _Scripted(["7 8\nfine"])
    server, url = serve(model, port=0)
    try:
        j = OpenAIJudge(url, model="m", retries=0)
        assert j.complete("hello") == "7 8\nfine"
        assert model.calls == [(SYSTEM, "hello")]
        assert j.identity()["endpoint"] == url + "/chat/completions"
        with pytest.raises(JudgeError, match="refused"):
            OpenAIJudge(url.replace("/v1", "/nope"), retries=3, sleep=lambda s: None).complete("x")
    finally:
        server.shutdown()
        server.server_close()
    sleeps = []
    with pytest.raises(JudgeError, match="unreachable after 4 tries"):
        OpenAIJudge(url, retries=3, backoff=1.5, sleep=sleeps.append).complete("x")   # server is gone
    assert sleeps == [1.5, 3.0, 6.0]


def test_openai_judge_retries_5xx():
    """A 503 twice, then an answer: the client backs off and gets it."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import threading

    from uta_bench.llava.judge import OpenAIJudge

    hits = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.headers.get("Authorization"))
            code, body = (503, b"busy") if len(hits) < 3 else (200, json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": "3 4"}}]}).encode())
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        import os

        os.environ["UTA_TEST_JUDGE_KEY"] = "sk-test"
        sleeps = []
        j = OpenAIJudge(f"http://127.0.0.1:{srv.server_address[1]}/v1", key_env="UTA_TEST_JUDGE_KEY",
                        retries=5, backoff=0.5, sleep=sleeps.append)
        assert j.complete("x") == "3 4"
        assert sleeps == [0.5, 1.0] and hits == ["Bearer sk-test"] * 3
    finally:
        os.environ.pop("UTA_TEST_JUDGE_KEY", None)
        srv.shutdown()
        srv.server_close()


def test_make_judge_needs_exactly_one():
    from uta_bench.llava.judge import make_judge

    with pytest.raises(UtaBenchError, match="pick one judge"):
        make_judge(None, None)
    with pytest.raises(UtaBenchError, match="hf:NAME"):
        make_judge("gpt4", None)


def test_vision_tower_selects_block():
    """Features equal the output of the chosen block captured by a hook on an ordinary forward."""
    from uta_bench import load_model
    from uta_bench.llava.vision import VisionTower

    torch.manual_seed(0)
    loaded = load_model("uta_tiny", pretrained=False)
    x = torch.randn(2, 3, 64, 64)
    seen = {}
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k, b in
             enumerate(loaded.visual.blocks)]
    loaded.visual.forward_features(x)
    for h in hooks:
        h.remove()
    pen = VisionTower(loaded, layer=-2)(x)
    assert pen.shape == (2, 16, 64)
    torch.testing.assert_close(pen, seen[0][:, 1:], rtol=0, atol=0)        # penultimate, CLS dropped
    last = VisionTower(loaded, layer=-1, feature="cls_patch")(x)
    torch.testing.assert_close(last, seen[1], rtol=0, atol=0)
    assert not any(p.requires_grad for p in VisionTower(loaded).parameters())
    with pytest.raises(UtaBenchError, match="out of range"):
        VisionTower(loaded, layer=-3)


def _tiny_llava(projector="linear"):
    from transformers import LlamaConfig, LlamaForCausalLM

    from uta_bench import load_model
    from uta_bench.llava.model import LlavaModel
    from uta_bench.llava.vision import VisionTower

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    lm = LlamaForCausalLM(cfg)
    return LlavaModel(VisionTower(load_model("uta_tiny", pretrained=False)), lm, projector)


def test_embed_splices_image_features():
    from uta_bench.llava.conversation import IGNORE_INDEX, IMAGE_INDEX

    m = _tiny_llava("mlp2x_gelu")
    imgs = torch.randn(2, 3, 64, 64)
    ids = [[5, 6, IMAGE_INDEX, 7, 8], [9, IMAGE_INDEX, 10]]
    labels = [[IGNORE_INDEX, IGNORE_INDEX, IMAGE_INDEX, 7, 8], [IGNORE_INDEX, IMAGE_INDEX, 10]]
    emb, mask, lab = m.embed(ids, imgs, labels)
    assert emb.shape == (2, 4 + 16, 32) and mask.sum(1).tolist() == [20, 18]
    feats = m.projector(m.vision(imgs))
    table = m.lm.get_input_embeddings().weight
    torch.testing.assert_close(emb[0, 2:18], feats[0])
    torch.testing.assert_close(emb[1, 1:17], feats[1])
    torch.testing.assert_close(emb[0, [0, 1, 18, 19]], table[[5, 6, 7, 8]])
    torch.testing.assert_close(emb[1, [0, 17]], table[[9, 10]])
    assert (emb[1, 18:] == 0).all()
    assert lab[0].tolist() == [IGNORE_INDEX] * 18 + [7, 8]
    assert lab[1].tolist() == [IGNORE_INDEX] * 17 + [10, IGNORE_INDEX, IGNORE_INDEX]
    with pytest.raises(UtaBenchError, match="2 <image> placeholders but 1 images"):
        m.embed(ids, imgs[:1])


def test_gradient_checkpointing_same_loss_and_grads():
    from uta_bench.llava.conversation import IMAGE_INDEX

    m = _tiny_llava()
    m.set_trainable(2)
    ids, labels = [[3, IMAGE_INDEX, 4, 5, 6]], [[-100, IMAGE_INDEX, 4, 5, 6]]
    imgs = torch.randn(1, 3, 64, 64)
    m.train()
    out = []
    for ckpt in (False, True):
        if ckpt:
            m.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        m.zero_grad()
        loss = m(ids, labels, imgs)
        loss.backward()
        out.append((loss.detach(), m.projector.weight.grad.clone(), m.lm.model.layers[0].mlp.up_proj.weight.grad.clone()))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b)


def test_recipe_files_match_paper():
    from uta_bench.llava.recipe import load_recipe
    from uta_bench.paths import repo_root

    r1 = load_recipe(repo_root() / "recipes/llava/stage1.yaml")
    r2 = load_recipe(repo_root() / "recipes/llava/stage2.yaml")
    assert (r1.stage, r1.lr, r1.batch_size, r1.epochs, r1.warmup_steps, r1.weight_decay, r1.schedule) == \
        (1, 2e-3, 128, 1, 150, 0.0, "cosine")
    assert (r2.stage, r2.lr, r2.batch_size, r2.epochs, r2.warmup_steps, r2.weight_decay) == (2, 2e-5, 32, 3, 150, 0.0)
    assert r1.vision_layer == r2.vision_layer == -2 and r1.projector == "linear"
    with pytest.raises(UtaBenchError, match="did you mean lr"):
        load_recipe(None, {"lrr": "1"})


def test_lr_schedule():
    from uta_bench.llava.recipe import LlavaRecipe
    from uta_bench.llava.train import lr_at

    cos, const = LlavaRecipe(lr=1.0, warmup_steps=2), LlavaRecipe(lr=1.0, warmup_steps=2, schedule="constant")
    # warm-up (step+1)/2, then cosine over steps 2..10 of 11, reaching 0 at the last step
    assert [lr_at(cos, s, 11) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_at(cos, 6, 11) == pytest.approx(0.5)      # half-way through the decay
    assert lr_at(cos, 10, 11) == pytest.approx(0.0)
    assert [lr_at(const, s, 11) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 1.0, 1.0]


def test_bench_layout_errors(tmp_path):
    from uta_bench.llava.bench_data import load_bench, make_llava_bench

    with pytest.raises(UtaBenchError, match="missing questions.jsonl"):
        load_bench(tmp_path)
    root = make_llava_bench(tmp_path / "b", source="skimage", n_images=2, offset=0)
    b = load_bench(root)
    assert len(b.questions) == 6 and sorted({q["category"] for q in b.questions}) == ["complex", "conv", "detail"]
    assert "five descriptive sentences" in b.rule_for(b.questions[0])["prompt"]
    (root / "images" / b.questions[0]["image"]).unlink()
    with pytest.raises(UtaBenchError, match="bench images missing"):
        load_bench(root)


def test_step_plan_shards_and_resumes():
    from uta_bench.llava.train import step_plan

    full = step_plan(10, 4, 2, seed=3, start=0, total=5)          # 2 steps per epoch, last 2 samples dropped
    assert [len(s) for s in full] == [2] * 5 and all(len(mb) == 2 for s in full for mb in s)
    assert sorted(i for s in full[:2] for mb in s for i in mb) == sorted(set(i for s in full[:2] for mb in s for i in mb))
    assert full[:2] != full[2:4]                                  # a new permutation per epoch
    assert step_plan(10, 4, 2, 3, start=3, total=5) == full[3:]   # resume = the tail of the same plan
    r0, r1 = (step_plan(10, 4, 1, 3, 0, 5, rank=r, world=2) for r in (0, 1))
    for s, a, b in zip(full, r0, r1):
        assert sorted(i for mb in a + b for i in mb) == sorted(i for mb in s for i in mb)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from uta_bench.cli.main import main

    for argv, want in ((["run", "llava-bench", "--llava", str(tmp_path), "--bench", str(tmp_path / "nope"),
                         "--judge", "hf:x"], "not a LLaVA-Bench folder"),
                       (["train", "llava", "--stage", "3", "--output", str(tmp_path / "o")], "--stage must be 1 or 2"),
                       (["train", "llava", "--stage", "1", "--output", str(tmp_path / "o"), "--data",
                         str(tmp_path / "missing.json")], "LLaVA data file")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and want in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_vision_tower_open_clip_vit():
    """open_clip's own ViT (the CLIP / OpenCLIP baselines): the hooked block output equals a manual
    pass through patch embedding, CLS + positions, ln_pre and the first N-1 residual blocks."""
    import contextlib
    from types import SimpleNamespace

    from open_clip.transformer import VisionTransformer

    from uta_bench.llava.vision import VisionTower

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, width=32, layers=3, heads=4, mlp_ratio=2.0,
                            output_dim=16).eval()
    loaded = SimpleNamespace(name="tiny_openclip", visual=vit, autocast=contextlib.nullcontext)
    x = torch.randn(2, 3, 32, 32)
    got = VisionTower(loaded, layer=-2)(x)
    with torch.no_grad():
        t = vit.conv1(x).flatten(2).transpose(1, 2)
        t = torch.cat([vit.class_embedding.expand(2, 1, -1), t], 1) + vit.positional_embedding
        t = vit.ln_pre(t)
        for blk in vit.transformer.resblocks[:2]:
            t = blk(t)
    assert got.shape == (2, 16, 32)
    torch.testing.assert_close(got, t[:, 1:])


def test_bench_reads_llava_repo_coco_names(tmp_path):
    """LLaVA's repo names for the COCO bench (qa90_*, caps_boxes_*) and a separate image folder."""
    import shutil

    from uta_bench.llava.bench_data import load_bench, make_llava_bench

    src = make_llava_bench(tmp_path / "b", source="skimage", n_images=1, offset=0)
    coco = tmp_path / "coco"
    coco.mkdir()
    for a, b in (("questions.jsonl", "qa90_questions.jsonl"), ("answers_gpt4.jsonl", "qa90_gpt4_answer.jsonl"),
                 ("context.jsonl", "caps_boxes_coco2014_val_80.jsonl"), ("rule.json", "rule.json")):
        shutil.copy(src / a, coco / b)
    with pytest.raises(UtaBenchError, match="bench images missing"):
        load_bench(coco)
    b = load_bench(coco, images=src / "images")
    assert len(b.questions) == 3 and b.manifest == load_bench(src).manifest
    assert b.image_path(b.questions[0]).is_file()
