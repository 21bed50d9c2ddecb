"""Zero-shot runner: task cards, feature cache + resume, bad images, predictions, data check, CLI."""
from __future__ import annotations

import json

import pytest

from zs_helpers import TEMPLATES, cfg, rows, tiny_on_one_thread, write_card
from uta_bench.data import synthetic as syn
from uta_bench.errors import UtaBenchError
from uta_bench.zeroshot.run import evaluate_loaded

EXPECTED = {"imagenet1k": 50000, "imagenet_a": 7500, "imagenet_r": 30000, "imagenet_v2": 10000,
            "imagenet_sketch": 50889, "objectnet": 18574, "flickr30k": 1000, "mscoco": 5000}


@pytest.fixture(scope="module")
def loaded():
    yield from tiny_on_one_thread()


def test_suite_cards_counts_and_subsets():
    from uta_bench.data.imagenet_meta import subset_indices
    from uta_bench.taskcards import expand, get_card

    cards = expand(["zeroshot"])
    assert {c.task: c.expected_samples for c in cards} == EXPECTED
    assert get_card("flickr30k").expected_captions == 5000 and get_card("mscoco").expected_captions == 25010
    for name in ("imagenet_a", "imagenet_r"):
        idx = subset_indices(get_card(name).class_subset)
        assert len(idx) == 200 and idx == sorted(idx) and len(set(idx)) == 200
    assert subset_indices(get_card("imagenet_a").class_subset) != subset_indices(get_card("imagenet_r").class_subset)


@pytest.mark.parametrize("data,field", [({"task": "x", "type": "classification"}, "version"),
                                        ({"task": "x", "version": 1, "type": "classification",
                                          "expected_samples": "many"}, "expected_samples")])
def test_bad_card_names_the_field(data, field):
    from uta_bench.taskcards import parse_card

    with pytest.raises(UtaBenchError, match=f"field '{field}'"):
        parse_card(data, "bad.yaml")


def _folder_card(tmp_path, n_classes=4, per_class=3, **extra):
    syn.make_imagefolder(tmp_path / "data" / "f", [f"class_{i}" for i in range(n_classes)], per_class=per_class)
    return write_card(tmp_path, "f", type="classification", dataset={"path": "f"}, classes="folder",
                      templates=TEMPLATES, expected_samples=n_classes * per_class, **extra)


def test_cache_resume_after_kill_and_warm_rerun(loaded, tmp_path, monkeypatch):
    from uta_bench.predictions import load_predictions
    from uta_bench.store import ResultsStore

    card = _folder_card(tmp_path)                       # 12 images, cache chunks of 5 -> 3 chunks
    ref = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], use_cache=False, feature_chunk=5))
    calls = {"n": 0}
    real = type(loaded).encode_image

    def dying(self, images, normalize=True):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt            # killed while encoding the 3rd chunk
        return real(self, images, normalize)

    monkeypatch.setattr(type(loaded), "encode_image", dying)
    with pytest.raises(KeyboardInterrupt):
        evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], feature_chunk=5, batch_size=5))
    monkeypatch.setattr(type(loaded), "encode_image", real)
    resumed = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], feature_chunk=5))
    warm = evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], feature_chunk=5))
    extra = {r: json.loads(rows(r)[("f", "top1")].extra_json) for r in (resumed, warm)}
    assert extra[resumed]["images_encoded"] == 2 and extra[warm]["images_encoded"] == 0
    for run in (resumed, warm):
        assert rows(run)[("f", "top1")].value == rows(ref)[("f", "top1")].value
        r5 = rows(run)[("f", "top5")]
        assert (r5.ci_low, r5.ci_high) == pytest.approx(_scipy_wilson(round(r5.value * r5.n), r5.n), abs=1e-12)
        a, b = load_predictions(ResultsStore(), ref, "f"), load_predictions(ResultsStore(), run, "f")
        assert all((a[k] == b[k]).all() for k in ("index", "target", "top5", "correct1"))


def test_limit_and_wilson_interval(loaded, tmp_path):
    from uta_bench.stats import wilson_interval

    card = _folder_card(tmp_path)
    r = rows(evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], limit=7)))[("f", "top1")]
    assert r.n == 7
    k = round(r.value * 7)
    assert (r.ci_low, r.ci_high) == pytest.approx(_scipy_wilson(k, 7), abs=1e-12)   # scipy's Wilson interval
    assert r.ci_low <= r.value <= r.ci_high
    # the interval contains the estimate and shrinks with n at a fixed proportion (also at 0 and 1)
    for frac in (0.0, 0.3, 0.5, 1.0):
        widths = []
        for n in (10, 100, 1000, 10000):
            lo, hi = wilson_interval(frac * n, n)
            assert lo <= frac <= hi and (lo, hi) == pytest.approx(_scipy_wilson(round(frac * n), n), abs=1e-12)
            widths.append(hi - lo)
        assert all(a > b for a, b in zip(widths, widths[1:])), (frac, widths)


def _scipy_wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def test_bad_image_fail_names_file_and_skip_records_it(loaded, tmp_path):
    card = _folder_card(tmp_path)
    bad = tmp_path / "data" / "f" / "class_2" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UtaBenchError, match="broken.jpg.*--on-bad-image skip"):
        evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card]))
    r = rows(evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], on_bad_image="skip")))[("f", "top1")]
    extra = json.loads(r.extra_json)
    assert r.n == 12 and extra["skipped_images"] == 1 and extra["skipped"][0]["file"].endswith("broken.jpg")
    assert extra["count_mismatch"].startswith("found 13")


def test_data_check_cli_counts_manifest_and_run_records_it(loaded, tmp_path, monkeypatch, capsys):
    from uta_bench.cli.main import main

    card = _folder_card(tmp_path)
    monkeypatch.setenv("UTA_BENCH_TASKS", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.setenv("UTA_BENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as ok:
        main(["data", "check", "f"])
    assert ok.value.code == 0
    from uta_bench.data.manifest import manifest_path

    m = json.loads(manifest_path("f").read_text())
    assert m["n_samples"] == 12 and len(m["files"]) == 12 and len(m["files"][0]["sha256"]) == 64
    r = rows(evaluate_loaded(loaded, ["f"], cfg(tmp_path, [card])))[("f", "top1")]
    assert r.dataset_manifest == f"sha256:{m['content_sha256']}"
    (tmp_path / "data" / "f" / "class_0" / "class_0_0000.JPEG").unlink()     # data changed: count + digest
    with pytest.raises(SystemExit) as fail:
        main(["data", "check", "f", "--no-hash"])
    assert fail.value.code == 2 and "f: 11 images, expected 12" in capsys.readouterr().err
    r2 = rows(evaluate_loaded(loaded, ["f"], cfg(tmp_path, [card])))[("f", "top1")]
    assert r2.dataset_manifest.startswith("quick:")


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from uta_bench.cli.main import main

    monkeypatch.setenv("UTA_BENCH_DATA", str(tmp_path / "nothing"))
    with pytest.raises(SystemExit) as e:
        main(["run", "zeroshot", "--model", "uta_tiny", "--random-init", "--tasks", "imagenet_a", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: task imagenet_a: no data found") and "Traceback" not in err


def test_same_shaped_datasets_never_share_cached_features(loaded, tmp_path):
    """Two wds sets with equal names, labels and (block-padded) tar sizes but different images."""
    cards = []
    for i, name in enumerate(("w1", "w2")):
        syn.make_wds_classification(tmp_path / "data" / name, [0, 1, 2, 0], ["x", "y", "z"], seed=i, maxcount=10)
        cards.append(write_card(tmp_path, name, type="classification",
                                dataset={"path": name, "formats": ["wds"]}, classes="dataset", templates=TEMPLATES))
    r = rows(evaluate_loaded(loaded, [str(c) for c in cards], cfg(tmp_path, cards)))
    e1, e2 = (json.loads(r[(t, "top1")].extra_json) for t in ("w1", "w2"))
    assert e1["feature_cache"] != e2["feature_cache"] and e2["images_encoded"] == 4


@pytest.mark.parametrize("fields,needle", [
    ({"classes": ["a", "b", "c", "d"], "class_subset": [0, 1, 2, 5]}, "class_subset index 5 is outside the 4 classes"),
    ({"classes": ["a", "b"]}, "the data lists 4 classes but task f evaluates 2"),
])
def test_data_check_rejects_what_the_run_rejects(loaded, tmp_path, fields, needle):
    """One class/subset check for both: `data check` used to say ok for data the run refuses."""
    from uta_bench.data.check import check_task
    from uta_bench.taskcards import load_card_file

    syn.make_imagefolder(tmp_path / "data" / "f", [f"class_{i}" for i in range(4)], per_class=1)
    card = write_card(tmp_path, "f", type="classification", dataset={"path": "f", "labels": "folder"},
                      templates=TEMPLATES, metrics=["top1"], **fields)
    with pytest.raises(UtaBenchError, match=needle):
        evaluate_loaded(loaded, [str(card)], cfg(tmp_path, [card], use_cache=False))
    res = check_task(load_card_file(card), tmp_path / "data", do_hash=False, progress=False)
    assert not res.ok and needle in res.message
