"""`uta-bench demo`: offline mini-reproduction of Table 6 (teacher + FD / MIM / UTA+MIM / UTA students) and of
the second stage (UTA + contrastive fine-tuning)."""
from __future__ import annotations

from typing import Optional

import typer


def print_table(console, result) -> None:
    from rich.table import Table

    t = Table(title="mini Table 6 (demo world; ZS = zero-shot top-1 through `run zeroshot`)",
              caption="held-out: 12 colour x shape compositions absent from every training image and caption "
                      "(chance 8.3%); seen: new images of the 36 trained compositions (chance 2.8%); step: "
                      "student forward+backward+AdamW, median process CPU time, objectives interleaved; "
                      "UTA + contrastive: the UTA student after the second stage (paper Sec. 3)")
    for col in ("Config", "ZS held-out", "ZS seen", "step vs MIM", "CPU ms/step"):
        t.add_column(col, justify="left" if col == "Config" else "right")
    for r in result.rows:
        rel = f"{r['rel_mim']:.2f}x" if "rel_mim" in r else "-"
        ms = f"{1000 * r['step_s']:.1f}" if "step_s" in r else "-"
        t.add_row(r["model"], f"{100 * r['zs_heldout']:.1f}", f"{100 * r['zs_seen']:.1f}", rel, ms)
    console.print(t)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: str = typer.Option("results/demo", "--out", "-o", help="Output folder (data, checkpoints, PNGs)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        seed: int = typer.Option(0, "--seed"),
        teacher_steps: Optional[int] = typer.Option(None, "--teacher-steps", min=1),
        student_steps: Optional[int] = typer.Option(None, "--student-steps", min=1),
        n_train: Optional[int] = typer.Option(None, "--n-train", min=64),
        threads: int = typer.Option(1, "--threads", min=1,
                                    help="torch CPU threads (1: fastest on a shared 2-core machine; the "
                                         "reported figures were made with 1)."),
    ):
        """Offline mini-reproduction of Table 6 (teacher, FD/MIM/UTA+MIM/UTA students, zero-shot).

        Procedural captioned world -> CLIP teacher -> four students pre-trained on images only ->
        UTA student fine-tuned contrastively on the captions -> zero-shot through the normal runner; prints
        a mini Table 6 (+ the second-stage row), writes store rows and PNGs.
        """
        import time

        from rich.console import Console

        from uta_bench.demo.run import DemoConfig, run_demo

        import torch

        torch.set_num_threads(threads)
        cfg = DemoConfig(out_dir=out, store=store, seed=seed)
        for key, value in (("teacher_steps", teacher_steps), ("student_steps", student_steps),
                           ("n_train", n_train)):
            if value is not None:
                setattr(cfg, key, value)
        console = Console()
        t0 = time.perf_counter()
        result = run_demo(cfg, console=console)
        print_table(console, result)
        console.print(f"rows: `uta-bench results --run {result.run_ids['table']}`; figures: "
                      f"{result.figures['fig3']}, {result.figures['loss']}")
        console.print(f"wall time {time.perf_counter() - t0:.0f} s")
