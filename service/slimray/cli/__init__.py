"""The `slimray` command line: prune models, run jobs, serve the job service, and be its client.
Light to import: only the chosen subcommand's module loads, with its Keras, Ray or uvicorn."""

from slimray.cli.entry import main

__all__ = ["main"]
