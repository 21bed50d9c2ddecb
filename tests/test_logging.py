"""Silent fallbacks say what they did (through `logging`), and the CLI shows it (`--verbose`)."""
from __future__ import annotations

import logging

import pytest
import torch

from zs_helpers import tiny


@pytest.fixture(scope="module")
def loaded():
    return tiny(0)


def _warnings(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("uta_bench.") and needle in r.getMessage()]


def test_corrupt_classifier_cache_is_logged(loaded, caplog):
    from uta_bench.zeroshot.classifier import build_classifier, cache_dir

    good = build_classifier(loaded, ["cat", "dog"], ["a photo of a {c}."])
    path = cache_dir() / f"{good.key}.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    with caplog.at_level(logging.WARNING, logger="uta_bench"):
        again = build_classifier(loaded, ["cat", "dog"], ["a photo of a {c}."])
    assert torch.equal(good.weights, again.weights)
    assert _warnings(caplog, f"{path} is unreadable")


def test_corrupt_feature_chunk_is_logged(loaded, tmp_path, caplog):
    from uta_bench.data import synthetic as syn
    from uta_bench.zeroshot.features import cache_root, image_features

    root = syn.make_imagefolder(tmp_path / "f", ["a", "b"], per_class=2)
    refs = sorted(str(p) for p in root.rglob("*.JPEG"))
    first = image_features(loaded, refs, "k" * 64, progress=False, chunk=2)
    chunk = sorted(cache_root().rglob("*.safetensors"))[0]
    chunk.write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="uta_bench"):
        again = image_features(loaded, refs, "k" * 64, progress=False, chunk=2)
    assert again.computed == 2 and torch.equal(first.feats, again.feats)
    assert _warnings(caplog, f"{chunk} is unreadable")


def test_corrupt_caption_cache_is_logged(loaded, caplog):
    from uta_bench.zeroshot.classifier import cache_dir
    from uta_bench.zeroshot.retrieval import caption_features

    first = caption_features(loaded, ["a cat on a mat", "a dog"])
    (path,) = cache_dir().glob("captions-*.safetensors")
    path.write_bytes(b"\x00" * 16)
    with caplog.at_level(logging.WARNING, logger="uta_bench"):
        again = caption_features(loaded, ["a cat on a mat", "a dog"])
    assert torch.equal(first, again)
    assert _warnings(caplog, f"{path} is unreadable")


def test_hub_download_error_is_logged(monkeypatch, caplog):
    from uta_bench.errors import NotFoundError
    from uta_bench.models import weights
    from uta_bench.registry import get_card

    card = get_card("uta_b16")
    assert card.weights.hf_repo and card.weights.filename

    def refused(repo, pattern):
        raise ConnectionError("403 Forbidden from the hub")

    monkeypatch.setattr(weights, "_offline", lambda: False)
    monkeypatch.setattr(weights, "_download", refused)
    with caplog.at_level(logging.WARNING, logger="uta_bench"), pytest.raises(NotFoundError, match="no weights"):
        weights.resolve_weights(card)
    assert _warnings(caplog, "ConnectionError: 403 Forbidden from the hub")


def test_cli_verbose_installs_a_handler_on_uta_bench_not_root(capsys):
    from rich.logging import RichHandler

    from uta_bench.cli.main import main

    root_level = logging.getLogger().level
    logger = logging.getLogger("uta_bench")
    try:
        with pytest.raises(SystemExit) as e:
            main(["--verbose", "tasks"])
        assert e.value.code == 0
        assert logger.level == logging.DEBUG and logging.getLogger().level == root_level
        assert sum(isinstance(h, RichHandler) for h in logger.handlers) == 1
        logging.getLogger("uta_bench.zeroshot.features").debug("a debug line from the library")
        assert "a debug line from the library" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["tasks"])                     # default: warnings only, still one handler
        assert logger.level == logging.WARNING and sum(isinstance(h, RichHandler) for h in logger.handlers) == 1
    finally:
        for h in [h for h in logger.handlers if isinstance(h, RichHandler)]:
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)
