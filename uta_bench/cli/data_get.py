"""`uta-bench data get TASK|SUITE`: fetch clip_benchmark's webdatasets from the Hugging Face hub (pinned to a
commit, every file verified against the hub's checksums), then `data check` them. See uta_bench/data/hub.py."""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import data_app

    @data_app.command("get")
    def get(
        tasks: List[str] = typer.Argument(..., help="Tasks or suites whose card names a hub repo "
                                                    "(dataset.hub), e.g. imagenet1k or zeroshot."),
        data_root: Optional[str] = typer.Option(None, "--data-root", envvar="UTA_BENCH_DATA",
                                                help="Folder holding the datasets."),
        revision: Optional[str] = typer.Option(None, "--revision",
                                               help="Branch, tag or commit to fetch (default: the commit "
                                                    "pinned in the data folder's hub_lock.json, else main)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be fetched; fetch nothing."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    ):
        """Download the tasks' webdatasets from the hub (resumable, commit pinned, files verified), then
        run `data check`. Offline (HF_HUB_OFFLINE=1 or the hub unreachable) it prints what it would fetch."""
        from rich.console import Console

        from uta_bench.cli.data_check import show_results
        from uta_bench.data import hub
        from uta_bench.data.check import check_task
        from uta_bench.data.resolve import data_root as root_of
        from uta_bench.errors import UtaBenchError
        from uta_bench.taskcards import expand

        cards = expand(list(tasks))
        root = root_of(data_root)
        for c in cards:
            hub.hub_repo(c)                 # every task names a repo before anything is asked of the hub
        if revision and hub.COMMIT.fullmatch(revision) and len({hub.hub_repo(c) for c in cards}) > 1:
            raise UtaBenchError(f"--revision {revision[:12]}... is a commit of one repo but the tasks fetch "
                                f"{len(cards)}; give one task, or a branch/tag name")
        console = Console()
        plans = [hub.make_plan(c, root, revision) for c in cards]
        for p in plans:
            show_plan(console, p)
        if dry_run:
            console.print("dry run: nothing fetched")
            return
        offline = next((p for p in plans if p.offline), None)
        if offline:
            raise UtaBenchError(f"offline ({offline.offline}): nothing fetched; the plan above is what `data get` "
                                f"would fetch -- run it where {hub.endpoint()} is reachable, or copy those files "
                                f"into {offline.target}")
        for p in plans:
            fetched = hub.fetch(p, progress=not no_progress)
            console.print(f"{p.task}: {len(fetched)} file(s) fetched and verified, {len(p.present)} already here; "
                          f"{p.repo}@{p.revision} pinned in {p.target / hub.LOCK_NAME}")
        show_results(console, [check_task(c, root, progress=not no_progress) for c in cards], root)


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return "?"  # pragma: no cover


def show_plan(console, plan) -> None:
    """Repo, revision, target folder and the files (size, checksum, already here?) of one task's plan."""
    from rich.table import Table

    if plan.revision is None:
        rev = f"{plan.requested} (not resolved)"
    else:
        rev = plan.revision if plan.requested == plan.revision else f"{plan.requested} = {plan.revision}"
    pinned = " (pinned in hub_lock.json)" if plan.pinned else ""
    offline = f"  [yellow]offline: {plan.offline}[/yellow]" if plan.offline else ""
    console.print(f"[bold]{plan.task}[/bold]: {plan.repo} @ {rev}{pinned} -> {plan.target}{offline}",
                  soft_wrap=True, highlight=False)
    t = Table()
    for col in ("file", "size", "hub checksum", "status"):
        t.add_column(col)
    if plan.files:
        for f in plan.files:
            check = f"sha256 {f.sha256[:16]}" if f.sha256 else f"git {f.blob_id[:16]}" if f.blob_id else "-"
            t.add_row(f.path, human_size(f.size), check, "here, verified" if f.path in plan.present else "to fetch")
    else:
        for i, pattern in enumerate(plan.patterns):
            t.add_row(pattern, "?", "-", "to fetch (listing needs the hub)" if i == 0 else "to fetch if the repo has it")
    console.print(t)
    todo = [f for f in plan.files if f.path not in plan.present]
    if plan.files:
        console.print(f"{plan.task}: {len(todo)} of {len(plan.files)} file(s) to fetch, "
                      f"{human_size(sum(f.size or 0 for f in todo))}")
