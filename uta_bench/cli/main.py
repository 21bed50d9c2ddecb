"""Entry point: builds the typer app from the command modules, installs the log handler (``--verbose``)
and keeps the exit-code contract.

Exit codes: 0 success (``check``: pass), 1 a regression found by ``check`` (nothing else exits 1),
2 a usage or data error (one line ``error: ...`` on stderr, never a traceback), 130 interrupted
(Ctrl-C; re-running the same command resumes from the finished tasks and cached features).
"""
from __future__ import annotations

import importlib
import sys

import typer

from uta_bench.errors import UtaBenchError

EXIT_CODES = ("Exit codes: 0 success (check: pass); 1 regression found by `check`; 2 usage or data error "
              "(one line on stderr); 130 interrupted (re-run the same command to resume).")
INTERRUPTED = ("interrupted; re-run the same command to resume (finished tasks are in the store and encoded "
               "images in the feature cache)")
app = typer.Typer(name="uta-bench", no_args_is_help=True, add_completion=False,
                  help="Evaluate and benchmark UTA / CLIP checkpoints; reproduce the paper's tables.",
                  epilog=EXIT_CODES,
                  pretty_exceptions_enable=False)
run_app = typer.Typer(no_args_is_help=True, help="Run an evaluation and write its rows to the results store.")
app.add_typer(run_app, name="run")
# Shared command groups: modules add sub-commands with `from uta_bench.cli.main import plot_app` etc.
train_app = typer.Typer(no_args_is_help=True, help="Train / fine-tune (pre-training, detection, segmentation...).")
plot_app = typer.Typer(no_args_is_help=True, help="Draw the paper's figures and result plots as PNGs.")
data_app = typer.Typer(no_args_is_help=True, help="Fetch and check datasets before long runs.")
app.add_typer(train_app, name="train")
app.add_typer(plot_app, name="plot")
app.add_typer(data_app, name="data")

# Each module defines register(app, run_app). Add new command modules here (one line each).
COMMAND_MODULES = (
    "uta_bench.cli.basic",
    "uta_bench.cli.run_zeroshot",
    "uta_bench.cli.pretrain",
    "uta_bench.cli.contrastive",
    "uta_bench.cli.demo",
    "uta_bench.cli.data_check",
    "uta_bench.cli.data_get",
    "uta_bench.cli.table",
    "uta_bench.cli.report",
    "uta_bench.cli.compare",
    "uta_bench.cli.check",
    "uta_bench.cli.finetune",
    "uta_bench.cli.seg",
    "uta_bench.cli.det",
    "uta_bench.cli.llava",
    "uta_bench.cli.store",
    "uta_bench.cli.imports",
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


def _usage_error(e) -> int:
    """A typer/click usage error as one line naming the option and what is accepted (the help stays
    one ``--help`` away); ``uta-bench`` / ``uta-bench run`` without a command still print their help."""
    from uta_bench.validate import redact

    if type(e).__name__ == "NoArgsIsHelpError":
        e.show()
        return e.exit_code
    ctx = getattr(e, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    msg = " ".join(e.format_message().split())
    typer.echo(f"error: {redact(msg)}{hint}", err=True)
    return 2 if e.exit_code not in (0, 2) else e.exit_code


def _click_errors() -> tuple:
    """typer >= 0.29 raises its own (vendored) click classes; older typer raises click's."""
    classes = [typer.TyperException]
    try:
        import click

        classes.append(click.exceptions.ClickException)
    except ImportError:  # pragma: no cover - typer 0.29 does not need click
        pass
    return tuple(classes)


def _aborts() -> tuple:
    classes = [typer.Abort]
    try:
        import click

        classes.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover
        pass
    return tuple(classes)


def main(argv: list[str] | None = None) -> None:
    from uta_bench.validate import redact

    try:
        build()
        # typer.Exit(n) comes back as the return value
        code = app(args=argv, prog_name="uta-bench", standalone_mode=False)
    except UtaBenchError as e:
        typer.echo(f"error: {redact(' '.join(str(e).split()))}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except _click_errors() as e:
        sys.exit(_usage_error(e))
    except _aborts():
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except OSError as e:  # a file the user named or a full disk: one line, not a traceback
        import logging

        logging.getLogger(__name__).debug("OSError", exc_info=True)
        where = f": {e.filename}" if e.filename else ""
        typer.echo(f"error: {e.strerror or type(e).__name__}{where}", err=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - a store that breaks while reading (malformed pages, lost server)
        if not type(e).__module__.startswith("sqlalchemy"):
            raise
        from uta_bench.store import db_message

        typer.echo(f"error: the results store failed: {db_message(e)}", err=True)
        sys.exit(2)
    if code == 130:          # typer turns KeyboardInterrupt into Exit(130) before we see it
        typer.echo(INTERRUPTED, err=True)
    sys.exit(code if type(code) is int else 0)
