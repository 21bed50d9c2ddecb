"""One place for validating user input: option values (from the command line or a config file),
device strings, output paths and URLs with secrets in them.

Every failure is a :class:`~uta_bench.errors.UtaBenchError` (exit code 2) with one line naming the
option (``--tolerance``) or the config key (``check config ci.yaml: tolerance``) and what is accepted.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

from uta_bench.errors import UtaBenchError

PRECISIONS = ("fp32", "bf16", "fp16")


def bad_value(where: str, what: str, value) -> UtaBenchError:
    return UtaBenchError(f"{where} must be {what}, not {value!r}")


def integer(where: str, value, minimum: int | None = None, *, optional: bool = False) -> int | None:
    """An int (config files may give a numeric string) >= ``minimum``."""
    if value is None and optional:
        return None
    what = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, bool):
        raise bad_value(where, what, value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise bad_value(where, what, value) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or (minimum is not None and value < minimum):
        raise bad_value(where, what, value)
    return value


def number(where: str, value, minimum: float | None = None, *, unit: str = "") -> float:
    """A finite float >= ``minimum`` (nan and inf are refused: they would switch comparisons off)."""
    what = (f">= {minimum:g} and finite" if minimum is not None else "a finite number") + (f" ({unit})" if unit else "")
    if isinstance(value, bool):
        raise bad_value(where, what, value)
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad_value(where, what, value) from None
    if not math.isfinite(x) or (minimum is not None and x < minimum):
        raise bad_value(where, what, value)
    return x


def choice(where: str, value, choices) -> str:
    if value not in choices:
        raise bad_value(where, "one of " + ", ".join(choices), value)
    return value


def string_list(where: str, value) -> list[str]:
    """A comma-separated string or a list of them -> non-empty items (``--tasks a,b -t c``)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, (str, int)) for i in items):
        raise bad_value(where, "a name or a list of names", value)
    return [s.strip() for i in items for s in str(i).split(",") if s.strip()]


def device(where: str, value) -> str:
    """A torch device string naming hardware that is present (checked before any model loads)."""
    import torch

    if not isinstance(value, str):
        raise bad_value(where, "a device such as cpu, cuda or cuda:0", value)
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise bad_value(where, "a device such as cpu, cuda or cuda:0", value) from None
    if dev.type == "cpu":
        return value
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UtaBenchError(f"{where} {value}: no CUDA GPU is visible on this machine; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise UtaBenchError(f"{where} {value}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
        return value
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else getattr(torch.backends, "mps", None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise UtaBenchError(f"{where} {value}: no {dev.type} device is available on this machine; use --device cpu")
    return value


def writable_file(where: str, path) -> None:
    """Fail before any work when an output file cannot be created (missing rights, a directory...)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UtaBenchError(f"{where} {path} is a directory; give a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UtaBenchError(f"{where} {path}: cannot write there ({parent} is not a folder); give a writable path")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UtaBenchError(f"{where} {path}: cannot write there (permission denied); give a writable path")


def writable_dir(where: str, path) -> None:
    """Fail before any work when an output folder cannot be created or written (a file in the way,
    missing rights)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UtaBenchError(f"{where} {path} is a file; give a folder")
    parent = p
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UtaBenchError(f"{where} {path}: cannot write there ({parent} is not a folder); give a writable folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UtaBenchError(f"{where} {path}: cannot write there (permission denied on {parent}); "
                            "give a writable folder")


_URL_SECRET = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]*)@")


def redact(text):
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` in a string (other values unchanged)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_SECRET.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact_all(obj):
    """``redact`` applied to every string inside dicts / lists (e.g. a run's config before it is stored)."""
    if isinstance(obj, dict):
        return {k: redact_all(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_all(v) for v in obj]
    return redact(obj)


def write_output(where: str, path, data: str | bytes) -> None:
    """Atomically write a file the user asked for; a failure (read-only folder, full disk) is one line
    and leaves the previous file, if any, untouched."""
    from uta_bench.paths import atomic_write_bytes

    try:
        atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise UtaBenchError(f"cannot write {where} {path}: {e.strerror or e}; nothing was written there") from None


def finite(value):
    """typer callback for float options: nan/inf pass typer's min/max checks (every comparison with nan
    is False), so refuse them here."""
    if value is not None and not math.isfinite(value):
        import typer

        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value
