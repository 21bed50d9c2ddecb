"""`uta-bench train llava --stage 1|2` and `uta-bench run llava-bench` (paper Table 3)."""
from __future__ import annotations

import os
from typing import List, Optional

import typer


def _overrides(pairs: list[str]) -> dict:
    from uta_bench.errors import UtaBenchError

    out = {}
    for p in pairs:
        if "=" not in p:
            raise UtaBenchError(f"--set {p!r}: use KEY=VALUE (a recipe setting, e.g. --set lr=2e-5)")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from uta_bench.cli.main import data_app, train_app

    @data_app.command("llava-sample")
    def llava_sample(
        output: str = typer.Option(..., "--output", "-o", help="Folder to write (data/ and bench/)."),
        source: str = typer.Option("auto", "--source", help="tuxpaint | skimage | auto (tuxpaint if installed)."),
        limit: int = typer.Option(16, "--limit", min=1, help="Training images."),
        bench_images: int = typer.Option(4, "--bench-images", min=1, help="Bench images (3 questions each)."),
    ):
        """Write small LLaVA training files (stage 1 captions, stage 2 conversations) and a small
        LLaVA-Bench in the released layout, from package-shipped captioned pictures."""
        from pathlib import Path

        from uta_bench.llava.bench_data import make_llava_bench
        from uta_bench.llava.data import make_llava_sample

        d = make_llava_sample(Path(output) / "data", source=source, limit=limit)
        b = make_llava_bench(Path(output) / "bench", source=source, n_images=bench_images, offset=limit)
        typer.echo(f"{d['n']} {d['source']} images: {d['pretrain']} (stage 1), {d['instruct']} (stage 2), "
                   f"images {d['images']}; bench {b}")

    @train_app.command("llava")
    def train_llava(
        stage: int = typer.Option(..., "--stage", help="1: feature alignment (projector); 2: projector + LM."),
        output: str = typer.Option(..., "--output", "-o", help="Output directory (checkpoints, weights, log)."),
        recipe: Optional[str] = typer.Option(None, "--recipe",
                                             help="Recipe YAML (default recipes/llava/stage{1,2}.yaml)."),
        data: Optional[str] = typer.Option(None, "--data", help="LLaVA JSON (list of conversations)."),
        images: Optional[str] = typer.Option(None, "--images", help="Folder the JSON's image paths live in."),
        vision: Optional[str] = typer.Option(None, "--vision", help="Registered vision tower (uta_b16, ...)."),
        vision_checkpoint: Optional[str] = typer.Option(None, "--vision-checkpoint"),
        lm: Optional[str] = typer.Option(None, "--lm", help="Causal LM: HF name/dir, gguf:FILE, smollm2-135m."),
        init_from: Optional[str] = typer.Option(None, "--init-from", help="Stage 2: the stage-1 output dir."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1),
        resume: bool = typer.Option(False, "--resume", help="Continue from <output>/checkpoint exactly."),
        stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1,
                                                 help="Leave (checkpointed) after N optimizer steps."),
        sets: List[str] = typer.Option([], "--set", help="Any recipe setting: KEY=VALUE (repeatable)."),
    ):
        """LLaVA two-stage visual instruction tuning on a frozen vision tower (App. A.1)."""
        from pathlib import Path

        from rich.console import Console

        from uta_bench.errors import UtaBenchError
        from uta_bench.llava.recipe import load_recipe
        from uta_bench.paths import repo_root

        if stage not in (1, 2):
            raise UtaBenchError(f"--stage must be 1 or 2, got {stage}")
        if recipe is None:
            root = repo_root() or Path.cwd()
            recipe = str(root / "recipes" / "llava" / f"stage{stage}.yaml")
        ov = {**_overrides(sets), "stage": stage, "data": data, "images": images, "vision": vision,
              "vision_checkpoint": vision_checkpoint, "lm": lm, "init_from": init_from, "max_steps": max_steps}
        rec = load_recipe(recipe, ov)
        from uta_bench.llava.train import resources, train

        if os.environ.get("RANK", "0") == "0":
            typer.echo(resources(rec).describe())

        res = train(rec, output, resume=resume, stop_after=stop_after)
        c = Console()
        if "stopped_at" in res:
            c.print(f"stopped after step {res['stopped_at']}; resume with --resume")
        else:
            l = res["losses"]
            c.print(f"stage {stage} done: {res['steps']} steps, loss {l[0]:.4f} -> {l[-1]:.4f}; wrote {output}")

    @run_app.command("llava-bench")
    def llava_bench(
        llava: str = typer.Option(..., "--llava", help="Stage-2 output directory (uta-bench train llava)."),
        bench: str = typer.Option(..., "--bench", help="LLaVA-Bench folder in the released layout."),
        bench_images: Optional[str] = typer.Option(None, "--bench-images",
                                                   help="Image folder if not <bench>/images (COCO val2014)."),
        judge: Optional[str] = typer.Option(None, "--judge", help="Local judge: hf:NAME (e.g. hf:smollm2-135m)."),
        judge_url: Optional[str] = typer.Option(None, "--judge-url",
                                                help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1"),
        judge_model: str = typer.Option("gpt-4-0314", "--judge-model", help="Model name sent to --judge-url."),
        judge_key_env: str = typer.Option("OPENAI_API_KEY", "--judge-key-env",
                                          help="Environment variable holding the endpoint's API key."),
        judge_retries: int = typer.Option(5, "--judge-retries", min=0),
        judge_max_tokens: int = typer.Option(1024, "--judge-max-tokens", min=8,
                                             help="Length cap of each review (score line + explanation)."),
        max_new_tokens: int = typer.Option(1024, "--max-new-tokens", min=1),
        template: Optional[str] = typer.Option(None, "--template", help="Default: the training recipe's."),
        output: Optional[str] = typer.Option(None, "--output", help="Answers/reviews folder (resume re-uses it)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        device: str = typer.Option("auto", "--device", help="cpu | cuda | cuda:N | auto (cuda when available)."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N questions."),
    ):
        """Answer LLaVA-Bench greedily, judge against the reference answers, write Table 3 rows."""
        from rich.console import Console

        from uta_bench.llava.bench import COLUMNS, BenchConfig, run_llava_bench
        from uta_bench.resources import resolve

        typer.echo(resolve(device, None, None).describe())   # run_llava_bench resolves it

        cfg = BenchConfig(llava=llava, bench=bench, bench_images=bench_images, judge=judge, judge_url=judge_url, judge_model=judge_model,
                          judge_key_env=judge_key_env, judge_retries=judge_retries, template=template,
                          judge_max_tokens=judge_max_tokens,
                          max_new_tokens=max_new_tokens, output=output, store=store, device=device, limit=limit)
        run_id, scores = run_llava_bench(cfg)
        c = Console()
        for m, s in scores.items():
            c.print(f"{COLUMNS[m]:>12}: {s['relative']:.1f}  (model {s['model_mean']:.3f} / reference "
                    f"{s['ref_mean']:.3f}, n={s['n']})")
        c.print(f"run {run_id} written; see `uta-bench results --run {run_id}`")
