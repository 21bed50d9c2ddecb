"""`uta-bench data get`: a task's clip_benchmark webdataset from the Hugging Face hub, pinned and verified.

The task card names the dataset repo (``dataset.hub``, e.g. ``clip-benchmark/wds_imagenet1k``). Its files go
where `data check` and the runs look: ``<data root>/<first dataset.path>/`` holding ``<split>/nshards.txt``,
``<split>/<i>.tar`` and the repo's ``classnames.txt``, ``zeroshot_classification_templates.txt`` and
``dataset_type.txt`` (whichever it has). Only those files are fetched (not the train split).

* Pinned: the branch (``main`` unless ``--revision``) is resolved to a commit sha once and written to
  ``hub_lock.json`` beside the data; later gets fetch that commit until ``--revision`` asks for another.
  ``data check`` copies the lock's repo and commit into the task's manifest and runs record it.
* Verified: each file is compared with the hub's listing at that commit -- sha256 for LFS files (the
  shards), the git blob id for small files. A mismatch deletes the file and is an error (exit 2).
* Resumable: huggingface_hub resumes a dropped connection with an HTTP Range request, and files already
  fetched and verified (same size and mtime as the lock records) are not fetched again.
* Offline (``HF_HUB_OFFLINE=1`` or the endpoint unreachable) the plan is all there is: what would be
  fetched (from the lock when there is one, else the file patterns).

The endpoint is huggingface_hub's: ``$HF_ENDPOINT`` (read when called) or https://huggingface.co.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.paths import atomic_write_text
from uta_bench.taskcards import TaskCard

log = logging.getLogger(__name__)

LOCK_NAME = "hub_lock.json"
META_FILES = ("classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt")
WORKERS = 4
COMMIT = re.compile(r"[0-9a-f]{40}")
_CONNECTION_ERRORS = {"ConnectError", "ConnectTimeout", "TimeoutException", "ReadTimeout", "ConnectionError",
                      "RemoteProtocolError", "ReadError", "OfflineModeIsEnabled", "NetworkError"}


@dataclass
class HubFile:
    path: str
    size: int | None = None
    sha256: str | None = None       # LFS files (the shards): the hub's sha256 of the content
    blob_id: str | None = None      # small files kept in git: the git blob id (sha1 of "blob <n>\0" + content)


@dataclass
class Plan:
    """What `data get` fetches for one task."""

    task: str
    repo: str
    requested: str                  # the branch / tag / commit asked for
    revision: str | None            # its commit sha (None: not resolved, offline without a lock)
    target: Path
    patterns: list[str]
    files: list[HubFile] = field(default_factory=list)
    pinned: bool = False            # revision taken from the lock
    offline: str | None = None      # why the hub was not asked (offline plans only)
    present: set = field(default_factory=set)   # paths already here and verified

    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return sum(sizes) if sizes and None not in sizes else None


def hub_repo(card: TaskCard) -> str:
    repo = card.dataset.get("hub")
    if not isinstance(repo, str) or "/" not in repo:
        raise UtaBenchError(f"task {card.task} has no hub repo (dataset.hub in {card.source or 'its card'}); "
                            "fetch its data by hand (see `uta-bench data check`)")
    return repo


def target_dir(card: TaskCard, root: Path) -> Path:
    """The folder the files go to: the card's first dataset.path under the data root."""
    paths = card.dataset.get("path")
    first = paths[0] if isinstance(paths, list) and paths else paths
    if not first:
        raise UtaBenchError(f"task card {card.source}: field 'dataset.path' is missing")
    p = Path(str(first)).expanduser()
    return p if p.is_absolute() else Path(root) / p


def file_patterns(card: TaskCard) -> list[str]:
    return [f"{card.dataset.get('split', 'test')}/*", *META_FILES]


def offline_reason() -> str | None:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return "HF_HUB_OFFLINE is set" if value.strip().upper() in ("1", "ON", "YES", "TRUE") else None


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def is_connection_error(e: BaseException) -> bool:
    return isinstance(e, (ConnectionError, TimeoutError)) or any(
        c.__name__ in _CONNECTION_ERRORS for c in type(e).__mro__)


# --- the lock beside the data ---------------------------------------------------------------------------

def read_lock(target: Path) -> dict | None:
    p = Path(target) / LOCK_NAME
    if not p.is_file():
        return None
    try:
        lock = json.loads(p.read_text())
        if isinstance(lock, dict) and COMMIT.fullmatch(str(lock.get("revision", ""))):
            return lock
    except (OSError, ValueError):
        pass
    log.warning("%s is unreadable; the revision will be resolved again", p)
    return None


def write_lock(plan: Plan, entries: dict, complete: bool) -> None:
    atomic_write_text(plan.target / LOCK_NAME, json.dumps({
        "repo": plan.repo, "repo_type": "dataset", "requested": plan.requested, "revision": plan.revision,
        "endpoint": endpoint(), "complete": complete,
        "files": [entries[p] for p in sorted(entries)]}, indent=1))


def _unchanged(target: Path, entry: dict) -> bool:
    try:
        st = os.stat(target / entry["path"])
    except OSError:
        return False
    return st.st_size == entry.get("size") and st.st_mtime_ns == entry.get("mtime_ns")


def hub_source(folder: str | Path) -> dict | None:
    """Where the data in ``folder`` came from, for manifests and run provenance: the lock's repo and
    commit, and whether every file it lists is still as fetched (same size and mtime)."""
    folder = Path(folder)
    lock = read_lock(folder)
    if lock is None:
        return None
    files = lock.get("files") or []
    return {"hub": lock.get("repo"), "revision": lock.get("revision"), "requested": lock.get("requested"),
            "complete": bool(lock.get("complete")),
            "files_unchanged": bool(files) and all(_unchanged(folder, e) for e in files)}


# --- the plan --------------------------------------------------------------------------------------------

def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _hub_error(e: Exception, repo: str, revision: str) -> UtaBenchError:
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(e, RevisionNotFoundError):
        return UtaBenchError(f"revision {revision!r} not found in dataset repo {repo} at {endpoint()}; "
                             "give a branch, tag or commit of that repo to --revision")
    if isinstance(e, RepositoryNotFoundError):
        return UtaBenchError(f"dataset repo {repo} not found at {endpoint()} (or it needs a token: "
                             "`hf auth login` / HF_TOKEN)")
    if isinstance(e, HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", "?")
        return UtaBenchError(f"the hub answered HTTP {status} for {repo}@{revision}; try again later")
    first = (str(e).splitlines() or [""])[0][:200]
    return UtaBenchError(f"{repo}@{revision}: {type(e).__name__}: {first}")


def list_files(api, repo: str, commit: str, split: str) -> list[HubFile]:
    """The split's files and the repo's metadata files at ``commit`` (size and hub checksums)."""
    from huggingface_hub.hf_api import RepoFile

    entries = list(api.get_paths_info(repo, list(META_FILES), revision=commit, repo_type="dataset"))
    entries += list(api.list_repo_tree(repo, path_in_repo=split, recursive=True, revision=commit,
                                       repo_type="dataset"))
    files = [HubFile(f.path, f.size, f.lfs.sha256 if f.lfs else None, None if f.lfs else f.blob_id)
             for f in entries if isinstance(f, RepoFile)]
    if not any(f.path == f"{split}/nshards.txt" for f in files):
        raise UtaBenchError(f"dataset repo {repo}@{commit[:12]} has no {split}/nshards.txt: not a "
                            "clip_benchmark webdataset (check dataset.hub / dataset.split in the task card)")
    return sorted(files, key=lambda f: f.path)


def offline_plan(card: TaskCard, root: Path, revision: str | None, reason: str) -> Plan:
    """What would be fetched, without the hub: the lock's commit and files when there is one."""
    repo, target = hub_repo(card), target_dir(card, root)
    lock = read_lock(target)
    plan = Plan(card.task, repo, revision or "main", None, target, file_patterns(card), offline=reason)
    if lock and lock.get("repo") == repo and (revision is None or revision in (lock["revision"],
                                                                             lock.get("requested"))):
        plan.requested, plan.revision, plan.pinned = lock.get("requested") or lock["revision"], lock["revision"], True
        plan.files = [HubFile(e["path"], e.get("size"), e.get("sha256"), e.get("blob_id")) for e in lock["files"]]
        plan.present = {e["path"] for e in lock["files"] if _unchanged(target, e)}
        if not lock.get("complete"):
            plan.files.append(HubFile(f"(the rest of {plan.patterns[0]} of the commit, not yet listed)"))
    elif COMMIT.fullmatch(plan.requested):
        plan.revision = plan.requested
    return plan


def make_plan(card: TaskCard, root: Path, revision: str | None = None) -> Plan:
    """Resolve the revision (the lock's commit unless ``revision``) and list the files to fetch. Offline
    or with the endpoint unreachable, the :func:`offline_plan` (``plan.offline`` says why)."""
    reason = offline_reason()
    if reason:
        return offline_plan(card, root, revision, reason)
    repo, target = hub_repo(card), target_dir(card, root)
    lock = read_lock(target)
    api = _api()
    pinned = revision is None and lock is not None and lock.get("repo") == repo
    requested = (lock.get("requested") or lock["revision"]) if pinned else (revision or "main")
    asked = lock["revision"] if pinned else requested
    try:
        commit = asked if pinned else api.dataset_info(repo, revision=asked).sha
        files = list_files(api, repo, commit, card.dataset.get("split", "test"))
    except UtaBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - hub / transport errors: offline plan or one line
        if is_connection_error(e):
            log.debug("hub unreachable", exc_info=True)
            return offline_plan(card, root, revision, f"{endpoint()} unreachable ({type(e).__name__})")
        raise _hub_error(e, repo, asked) from None
    plan = Plan(card.task, repo, requested, commit, target, file_patterns(card), files, pinned)
    known = {e["path"]: e for e in (lock or {}).get("files", [])} if lock and lock.get("revision") == commit else {}
    plan.present = {f.path for f in files if f.path in known and _same_checksum(known[f.path], f)
                    and _unchanged(target, known[f.path])}
    return plan


def _same_checksum(entry: dict, f: HubFile) -> bool:
    return entry.get("sha256") == f.sha256 and entry.get("blob_id") == f.blob_id and entry.get("size") == f.size


# --- fetching and verifying --------------------------------------------------------------------------------

def git_blob_id(path: Path) -> str:
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_error(path: Path, f: HubFile) -> str | None:
    """None when ``path`` is the hub's file ``f``, else what differs."""
    size = os.path.getsize(path)
    if f.size is not None and size != f.size:
        return f"{size} bytes, the hub lists {f.size}"
    if f.sha256:
        with open(path, "rb") as fh:
            got = hashlib.file_digest(fh, "sha256").hexdigest()
        return None if got == f.sha256 else f"sha256 {got[:16]}..., the hub lists {f.sha256[:16]}..."
    if f.blob_id:
        got = git_blob_id(path)
        return None if got == f.blob_id else f"git blob id {got[:16]}..., the hub lists {f.blob_id[:16]}..."
    return "the hub lists no checksum for it"


def _remove(target: Path, rel: str) -> None:
    """Delete a rejected file and huggingface_hub's download record of it (local_dir/.cache/huggingface)."""
    for p in (target / rel, target / ".cache" / "huggingface" / "download" / f"{rel}.metadata"):
        p.unlink(missing_ok=True)


class Stopped(Exception):
    """Raised inside a download thread to end it early."""


def _bar_class(advance):
    """A tqdm stand-in for huggingface_hub's downloads: every file's bytes go to one uta-bench bar."""
    class Bytes:
        def __init__(self, *args, **kwargs):
            if kwargs.get("initial"):
                advance(kwargs["initial"])

        def update(self, n=1):
            advance(n or 0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def close(self):
            pass

        def set_postfix_str(self, *args, **kwargs):
            pass

    return Bytes


def _fetch_one(plan: Plan, f: HubFile, bar) -> dict:
    import inspect

    from huggingface_hub import hf_hub_download

    kw = {"tqdm_class": bar} if "tqdm_class" in inspect.signature(hf_hub_download).parameters else {}
    try:
        path = Path(hf_hub_download(plan.repo, f.path, repo_type="dataset", revision=plan.revision,
                                    local_dir=plan.target, endpoint=endpoint(), **kw))
    except UtaBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - transport / hub errors become one line
        log.debug("download of %s failed", f.path, exc_info=True)
        hint = ("; re-run the same command to resume (verified files are kept)" if is_connection_error(e) or
                isinstance(e, OSError) else "")
        raise UtaBenchError(f"{plan.repo}@{plan.revision[:12]} {f.path}: download failed "
                            f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}){hint}") from None
    bad = checksum_error(path, f)
    if bad:
        _remove(plan.target, f.path)
        raise UtaBenchError(f"{plan.repo}@{plan.revision[:12]} {f.path}: {bad}; the file was deleted. Re-run to "
                            "fetch it again; if it repeats, something between you and the hub alters downloads")
    st = path.stat()
    return {"path": f.path, "size": st.st_size, "sha256": f.sha256, "blob_id": f.blob_id, "mtime_ns": st.st_mtime_ns}


def fetch(plan: Plan, progress: bool = True, workers: int = WORKERS) -> list[str]:
    """Download and verify the plan's missing files (``WORKERS`` at a time); returns the paths fetched.
    The lock is written first (the commit is pinned even if this is interrupted) and again at the end
    with every verified file."""
    from uta_bench.progress import progress_bar

    if plan.offline or plan.revision is None:
        raise UtaBenchError(f"{plan.repo}: nothing fetched ({plan.offline or 'revision not resolved'})")
    plan.target.mkdir(parents=True, exist_ok=True)
    old = read_lock(plan.target) or {}
    kept = old.get("files", []) if old.get("revision") == plan.revision else []
    entries = {e["path"]: e for e in kept if e["path"] in plan.present}
    write_lock(plan, entries, complete=False)
    todo = [f for f in plan.files if f.path not in plan.present]
    lock, stop = threading.Lock(), threading.Event()
    error = None
    with progress_bar(progress and bool(todo), sum(f.size or 0 for f in todo), f"get {plan.task}", "B") as advance:
        def safe_advance(n):
            if stop.is_set():               # Ctrl-C or another file failed: end this download now
                raise Stopped("stopped")    # (huggingface_hub deletes its partial temp file)
            with lock:
                advance(n)

        bar = _bar_class(safe_advance)
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1)))
        try:
            futures = [pool.submit(_fetch_one, plan, f, bar) for f in todo]
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                try:
                    entry = fut.result()
                except UtaBenchError as e:          # the first error is reported; the others stop
                    error = error or e
                    stop.set()
                    continue
                entries[entry["path"]] = entry
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            write_lock(plan, entries, complete=len(entries) == len(plan.files))
    if error is not None:
        raise error
    return [f.path for f in todo]
