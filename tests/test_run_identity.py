"""One run identity: the gate re-uses rows only under the same run key (precision as run, device type,
limit, init, seed, task version, data manifest, code version), says which, and every cache keys a
model by one identity."""
from __future__ import annotations

import json
import shutil

import pytest

from uta_bench.cli.main import main


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.fixture
def folder(sample_folder, tmp_path):
    d = tmp_path / "photos"
    shutil.copytree(sample_folder, d)
    return d


def test_check_bf16_after_fp32_makes_a_bf16_run(folder, tmp_path, capsys, one_thread):
    """Issue 13 reproduction 1: the bf16 gate used to re-use the fp32 run A and compare A with itself."""
    from uta_bench.store import ResultsStore

    code, out = cli(capsys, "run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", str(folder))
    assert code == 0, out
    store = ResultsStore()
    (run_a,) = store.df().run_id.unique()
    js = tmp_path / "c.json"
    args = ["check", "--model", "uta_tiny", "--random-init", "--tasks", str(folder), "--against", run_a,
            "--tolerance", "100", "--json", str(js)]
    code, out = cli(capsys, *args, "--precision", "bf16")
    assert code == 0, out
    rep = json.loads(js.read_text())
    (cand,) = rep["candidate_runs"]
    assert cand != run_a and rep["reused"] == []
    assert set(store.df(run_id=cand).precision) == {"bf16-autocast"}
    (m,) = rep["measured"]
    assert m["run_id"] == cand and m["key"]["precision"] == "bf16-autocast" and m["key"]["init"] == "random"
    assert all(v["candidate_run"] == cand and v["baseline_ref"] == f"run {run_a}" for v in rep["verdicts"])

    # the same bf16 gate again: re-uses that run, and says so with its key
    code, out = cli(capsys, *args, "--precision", "bf16")
    assert code == 0, out
    rep = json.loads(js.read_text())
    assert rep["candidate_runs"] == [cand] and rep["measured"] == []
    (r,) = rep["reused"]
    assert r["run_id"] == cand and r["key"]["precision"] == "bf16-autocast"
    assert r["reason"] == "stored under the same run key"
    assert sorted(r["row_ids"]) == sorted(store.df(run_id=cand)["id"].tolist())
    assert r["run_key"] == store.df(run_id=cand).run_key.iloc[0]
    assert f"re-used run {cand}" in out and "precision=bf16-autocast" in out
    assert store.df().run_id.nunique() == 2


@pytest.mark.parametrize("change", ["limit", "data", "seed", "code", "device"])
def test_gate_measures_again_when_any_key_field_differs(change, folder, tmp_path, capsys, monkeypatch, one_thread):
    from uta_bench.gate import check
    from uta_bench.store import ResultsStore

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "id_photos.yaml").write_text(
        f"task: id_photos\nversion: 1\ntype: classification\ndataset: {{path: {folder}, formats: [imagefolder]}}\n"
        "classes: folder\ntemplates: ['a photo of a {c}.']\nmetrics: [top1]\npaper: {table: '1', column: IN-1K}\n")
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    store = ResultsStore()
    kw = dict(against="paper", tolerance=100.0, tasks=["id_photos"], paper_as="uta_b16", random_init=True,
              progress=False)
    first = check(store, "uta_tiny", None, run_kwargs={}, **kw)
    again = check(store, "uta_tiny", None, run_kwargs={}, **kw)
    assert again.candidate_runs == first.candidate_runs and len(again.reused) == 1   # the same key: re-used
    run_kwargs, limit = {}, None
    if change == "limit":
        limit = 20
    elif change == "data":                     # one image fewer: another dataset manifest
        sorted(folder.rglob("*.jpg"))[0].unlink()
    elif change == "seed":
        run_kwargs = {"seed": 1}
    elif change == "code":
        import uta_bench.provenance as prov

        real = prov.versions
        monkeypatch.setattr(prov, "versions", lambda: {**real(), "git_commit": "0" * 40})
    elif change == "device":                   # the same settings on another device type: not the same run
        from uta_bench.store import RunKey

        key = RunKey(**again.reused[0]["key"])
        assert not store.latest(key=key).empty
        assert store.latest(key=RunKey(**{**key.__dict__, "device_type": "cuda"})).empty
        return
    other = check(store, "uta_tiny", None, run_kwargs=run_kwargs, limit=limit, **kw)
    assert other.reused == [] and other.candidate_runs != first.candidate_runs
    (m,) = other.measured
    assert m["run_key"] != again.reused[0]["run_key"]


def test_one_model_identity_for_every_cache(folder, tmp_path, one_thread):
    """RunConfig.model_id names the model in the feature, classifier and caption caches alike."""
    from uta_bench.zeroshot.retrieval import caption_features
    from uta_bench.models.loader import load_model, model_identity
    from uta_bench.zeroshot.classifier import build_classifier

    m = load_model("uta_tiny", pretrained=False)
    ident = model_identity(m)
    digest = __import__("hashlib").sha256()
    for k, v in sorted(m.model.state_dict().items()):      # every tensor, not only the text tower
        digest.update(k.encode())
        digest.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    assert ident == "params:" + digest.hexdigest()
    with __import__("torch").no_grad():
        m.model.visual.head.weight.add_(1.0)                # an image-tower change is another model
    assert model_identity(m) != ident
    a = build_classifier(m, ["cat", "dog"], ["a {c}."], model_id="ckpt-A")
    b = build_classifier(m, ["cat", "dog"], ["a {c}."], model_id="ckpt-B")
    assert a.key != b.key
    calls = []
    import uta_bench.zeroshot.classifier as zs

    real = zs._encode_batches

    def counting(*args, **kw):
        calls.append(1)
        yield from real(*args, **kw)

    zs._encode_batches = counting
    try:
        caption_features(m, ["a cat", "a dog"], model_id="ckpt-A")
        caption_features(m, ["a cat", "a dog"], model_id="ckpt-A")
        assert len(calls) == 1                             # second call: cache hit under the same id
        caption_features(m, ["a cat", "a dog"], model_id="ckpt-B")
        assert len(calls) == 2                             # another id: another cache entry
    finally:
        zs._encode_batches = real


def test_gate_refuses_to_compare_a_run_with_itself(folder, capsys, one_thread):
    from uta_bench.store import ResultsStore

    code, out = cli(capsys, "run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", str(folder))
    assert code == 0, out
    (run_a,) = ResultsStore().df().run_id.unique()
    code, out = cli(capsys, "check", "--model", "uta_tiny", "--random-init", "--tasks", str(folder), "--against",
                    run_a)
    assert code == 2 and f"the candidate is run {run_a} itself" in out and "Traceback" not in out
