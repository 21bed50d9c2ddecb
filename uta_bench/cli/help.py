"""Help text for options that a command module left undocumented: every option in `--help` says what
it does, and options with a fixed set of values list them.

``document(app)`` runs once in :func:`uta_bench.cli.main.build`, after the command modules registered
their commands, and only fills an option's help where the module gave none.
"""
from __future__ import annotations

import inspect

import typer
from typer.models import OptionInfo

# long option name -> help (commands share these meanings)
COMMON = {
    "--store": "Results store: a sqlite file path or a database URL (postgresql://...). Default: "
               "results/store.sqlite in a checkout, else the user data folder (see `uta-bench info`).",
    "--device": "Torch device: auto (cuda when available, else cpu) | cpu | cuda | cuda:N | mps.",
    "--precision": "fp32 | bf16 | fp16 (autocast; the store records what ran).",
    "--seed": "Random seed (data order, sampling, initialisation); the same seed repeats a run.",
    "--data-root": "Folder holding the datasets (see `uta-bench data check`).",
    "--batch-size": "Images per batch, or auto (see uta_bench.resources).",
    "--workers": "DataLoader worker processes (0: load in the main process), or auto (from the usable CPUs).",
    "--trust-checkpoint": "Allow pickled checkpoints that execute code when loaded.",
    "--work-dir": "Output folder for checkpoints, logs and metrics.",
    "--model": "Registered model name (see `uta-bench models`).",
    "--recipe": "Recipe name under recipes/ or a path to one.",
    "--out": "Output PNG file.",
    "--max-steps": "Stop after this many optimizer steps (default: the recipe's).",
    "--vision-checkpoint": "Weights of the vision tower (.safetensors/.pt).",
    "--judge-retries": "Retries of the judge model per answer when its review cannot be parsed.",
    "--max-new-tokens": "Longest answer generated, in tokens.",
    "--teacher-steps": "Teacher (CLIP) training steps (default: the demo's).",
    "--student-steps": "Student (UTA) pre-training steps (default: the demo's).",
    "--n-train": "Training images in the generated world (default: the demo's; at least 64).",
    "--ratio": "Mask ratio: fraction of patches masked (0 to 0.99).",
    "--size": "Image side in pixels.",
    "--train": "Training images to generate.",
    "--val": "Validation images to generate.",
}
# options with a fixed set of values: the help lists them
CHOICES = {"--device": "cpu | cuda", "--precision": "bf16"}
# per command: "train finetune" options override the recipe's field of the same name
RECIPE_OVERRIDE = "Override the recipe's {field} (default: the recipe's value)."


def _long_name(info: OptionInfo, param: str) -> str:
    decls = [d for d in (info.param_decls or ()) for d in d.split("/") if d.startswith("--")]
    return decls[0] if decls else "--" + param.replace("_", "-")


def _fill(callback, command: str) -> None:
    for name, p in inspect.signature(callback).parameters.items():
        info = p.default
        if not isinstance(info, OptionInfo):
            continue
        opt = _long_name(info, name)
        if info.help and opt in COMMON and (info.help.startswith("Default:") or
                                            (opt in CHOICES and CHOICES[opt] not in info.help)):
            info.help = f"{COMMON[opt]} {info.help}"      # say what it is / list the values it takes
        if info.help:
            continue
        if command == "train finetune" and opt not in ("--device", "--workers", "--seed", "--store",
                                                       "--trust-checkpoint"):
            info.help = RECIPE_OVERRIDE.format(field=name)
        elif opt in COMMON:
            info.help = COMMON[opt]


def document(app: typer.Typer, prefix: str = "") -> None:
    for cmd in app.registered_commands:
        if cmd.callback is not None:
            _fill(cmd.callback, (prefix + " " + (cmd.name or cmd.callback.__name__.replace("_", "-"))).strip())
    for group in app.registered_groups:
        if group.typer_instance is not None:
            document(group.typer_instance, (prefix + " " + (group.name or "")).strip())
