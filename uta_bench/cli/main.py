"""Entry point: builds the typer app from the command modules, installs the log handler
(``--verbose``) and turns UtaBenchError into ``error: <one line>`` with a non-zero exit code."""
from __future__ import annotations

import importlib
import sys

import typer

from uta_bench.errors import UtaBenchError

app = typer.Typer(name="uta-bench", no_args_is_help=True, add_completion=False,
                  help="Evaluate and benchmark UTA / CLIP checkpoints; reproduce the paper's tables.",
                  pretty_exceptions_enable=False)
run_app = typer.Typer(no_args_is_help=True, help="Run an evaluation and write its rows to the results store.")
app.add_typer(run_app, name="run")
# Shared command groups: modules add sub-commands with `from uta_bench.cli.main import plot_app` etc.
train_app = typer.Typer(no_args_is_help=True, help="Train / fine-tune (pre-training, detection, segmentation...).")
plot_app = typer.Typer(no_args_is_help=True, help="Draw the paper's figures and result plots as PNGs.")
data_app = typer.Typer(no_args_is_help=True, help="Check datasets before long runs.")
app.add_typer(train_app, name="train")
app.add_typer(plot_app, name="plot")
app.add_typer(data_app, name="data")

# Each module defines register(app, run_app). Add new command modules here (one line each).
COMMAND_MODULES = (
    "uta_bench.cli.basic",
    "uta_bench.cli.run_zeroshot",
    "uta_bench.cli.pretrain",
    "uta_bench.cli.demo",
    "uta_bench.cli.data_check",
    "uta_bench.cli.table",
    "uta_bench.cli.compare",
    "uta_bench.cli.check",
    "uta_bench.cli.finetune",
    "uta_bench.cli.seg",
    "uta_bench.cli.det",
    "uta_bench.cli.llava",
)


def setup_logging(verbose: bool = False) -> None:
    """Library modules log to ``uta_bench.*`` loggers; the CLI shows them on stderr through rich
    (warnings and up; everything with ``--verbose``). The root logger is left alone."""
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    logger = logging.getLogger("uta_bench")
    for h in [h for h in logger.handlers if getattr(h, "_uta_bench_cli", False)]:
        logger.removeHandler(h)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=verbose)
    handler._uta_bench_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.callback()
def _global_options(verbose: bool = typer.Option(False, "--verbose", "-v",
                                                 help="Log what the library does (cache recoveries, hub "
                                                      "fallbacks, ...), at debug level.")):
    setup_logging(verbose)


def build() -> typer.Typer:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app, run_app)
    from uta_bench.cli.help import document

    document(app)   # help for options a module left undocumented (--store, --device, --seed...)
    return app


def main(argv: list[str] | None = None) -> None:
    build()
    try:
        code = app(args=argv, standalone_mode=False)  # typer.Exit(n) comes back as the return value
    except UtaBenchError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise
    sys.exit(code if type(code) is int else 0)
