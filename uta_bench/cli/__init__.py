"""The `uta-bench` command line (typer + rich). Modules here import torch lazily, inside commands."""
