"""User-facing errors: one line saying what is wrong and what to do.

The CLI catches :class:`UtaBenchError` and prints ``error: <message>`` with a non-zero exit code
(2 for usage/data errors), never a traceback.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class UtaBenchError(Exception):
    """An error the user can fix (bad name, missing file, wrong checkpoint...)."""

    exit_code = 2


class CheckpointError(UtaBenchError):
    """A checkpoint that cannot be read or does not fit the architecture."""


class NotFoundError(UtaBenchError):
    """An unknown model/task/run name, or a missing file."""


def suggest(name: str, choices: Iterable[str], kind: str) -> NotFoundError:
    """Build a NotFoundError for ``name`` with close-match suggestions from ``choices``."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"run `uta-bench {kind}s` to list them")
    return NotFoundError(f"unknown {kind} {name!r}; {hint}")
