"""Reading checkpoints safely and loading them strictly.

* ``.safetensors`` through safetensors; ``.pt/.pth/.bin`` through ``torch.load(weights_only=True)``.
* A pickle that needs code execution is refused unless ``trust=True`` (CLI ``--trust-checkpoint``).
* Strict loading reports a short diff (missing / unexpected / shape mismatches, first few of each).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from uta_bench.errors import CheckpointError, NotFoundError

_CONTAINERS = ("state_dict", "model", "module", "model_ema")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 of a file, memoised on (path, size, mtime) under the uta-bench home."""
    from uta_bench.paths import home

    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = home() / "sha256_cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    digest = h.hexdigest()
    cache[key] = digest
    try:
        from uta_bench.paths import atomic_write_text

        atomic_write_text(cache_file, json.dumps(cache))
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return digest


def is_safetensors(path: Path) -> bool:
    """The safetensors layout: an 8-byte little-endian header length, then a JSON header ``{...``."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8


def read_state_dict(path: str | os.PathLike, trust: bool = False) -> dict:
    """Tensors of a checkpoint file, unwrapped from common containers ({'state_dict': ...})."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"checkpoint {p} does not exist; pass an existing file to --checkpoint")
    if p.suffix == ".safetensors" or is_safetensors(p):   # sniffed: a safetensors file renamed .pt/.bin
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {p} is not a readable safetensors file "
                                  f"(truncated or corrupt: {_first_line(e)}); download it again") from None
    else:
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types here
            msg = str(e)
            if "Weights only load failed" in msg or "weights_only" in msg:
                if not trust:
                    raise CheckpointError(
                        f"checkpoint {p} contains pickled objects that need code execution to load; "
                        "convert it to .safetensors, or re-run with --trust-checkpoint if you trust its "
                        "source") from None
                try:
                    sd = torch.load(p, map_location="cpu", weights_only=False)
                except Exception as e2:  # noqa: BLE001
                    raise CheckpointError(f"checkpoint {p} cannot be read: {_first_line(e2)}") from None
            else:
                raise CheckpointError(f"checkpoint {p} is truncated or corrupt ({_first_line(e)}); "
                                      "download it again") from None
    return unwrap(sd, p)


def unwrap(sd, where="checkpoint") -> dict:
    import torch

    for _ in range(3):
        if isinstance(sd, dict) and not any(isinstance(v, torch.Tensor) for v in sd.values()):
            inner = next((sd[k] for k in _CONTAINERS if k in sd and isinstance(sd[k], dict)), None)
            if inner is None:
                break
            sd = inner
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{where} holds no state dict of tensors")
    if all(k.startswith("module.") for k in sd):  # saved from DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def diff_state_dicts(expected: dict, got: dict) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of ``got`` against ``expected`` (name -> tensor)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k}: checkpoint {list(got[k].shape)} vs model {list(expected[k].shape)}"
              for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, shapes


def format_diff(model_name: str, missing, unexpected, shapes, n: int = 3) -> str:
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - n} more)" if len(items) > n else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:n])}{more}")
    return (f"checkpoint does not fit {model_name}: " + "; ".join(parts)
            + " - is it the right model/size?")


def strict_load(module, state_dict: dict, model_name: str, extra_unexpected=()) -> None:
    """Load ``state_dict`` into ``module`` only if keys and shapes match exactly."""
    expected = module.state_dict()
    missing, unexpected, shapes = diff_state_dicts(expected, state_dict)
    unexpected = list(extra_unexpected) + unexpected
    if missing or unexpected or shapes:
        raise CheckpointError(format_diff(model_name, missing, unexpected, shapes))
    module.load_state_dict(state_dict, strict=True)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
