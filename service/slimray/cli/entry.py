"""`slimray`'s parser and entry point: every subcommand's flags, and the dispatch to its module.
Flags are declared here, light; the chosen subcommand's module (Keras, Ray, uvicorn) loads alone."""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any, NamedTuple

from slimray.cli.render import console
from slimray.core.envvars import SERVER, TF_LOG_LEVEL
from slimray.core.jobstate import JobState
from slimray.core.spec import NORMALIZERS

# TensorFlow's C++ log level (2: errors only); to move into slimray.core.envvars beside the others

DESCRIPTION = "The `slimray` command line. Each subcommand imports heavy modules (Keras, Ray) only when run."


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class Command(NamedTuple):
    """The function a subcommand runs: `slimray.cli.<module>.<function>(args) -> exit status`."""

    module: str
    function: str
    tensorflow: bool = False  # it loads TensorFlow: quiet its C++ logs before the module imports it


def _add_prune(sub: Any) -> None:
    prune = sub.add_parser("prune", help="one-shot structured pruning of a saved .keras model")
    prune.add_argument("model", help="input .keras file")
    amount = prune.add_mutually_exclusive_group(required=True)
    amount.add_argument("--sparsity", type=float, help="fraction of channels to remove")
    amount.add_argument("--threshold", type=float,
                        help="remove every channel whose normalized score (--normalizer) is below this; "
                             "the sparsity is an outcome")  # fmt: skip
    amount.add_argument("--flops", type=float,
                        help="keep at most this fraction of the model's FLOPs, pruning as little as that "
                             "takes (--scope's order)")  # fmt: skip
    amount.add_argument(
        "--params", type=float, help="keep at most this fraction of the model's parameters (as --flops)"
    )
    prune.add_argument("--output", required=True, help="output .keras file")
    prune.add_argument("--criterion", default="l1",
                       help="a weight criterion registered in slimray.pruning.criteria "
                            "(an unknown name lists them)")  # fmt: skip
    prune.add_argument("--scope", default="local", choices=["local", "global"])
    prune.add_argument("--round-to", type=int, default=1, help="kept channels a multiple of N")
    prune.add_argument("--min-channels", type=int, default=1, help="never keep fewer per group")
    prune.add_argument(
        "--normalizer",
        default="mean",
        choices=NORMALIZERS,
        help="scores normalized within each group by this (what --threshold compares)",
    )
    prune.add_argument("--report", help="write a JSON report here")
    prune.add_argument("--strict", action="store_true",
                       help="refuse a model with layers slimray cannot prune through (default: keep "
                            "their channels whole and prune the rest)")  # fmt: skip
    prune.set_defaults(handler=Command("prune", "prune", tensorflow=True))


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a training job on Ray (embedded, or --address)")
    run.add_argument("spec", help="job spec, YAML or JSON")
    run.add_argument("--address", help="join this Ray cluster instead of starting one")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no live progress")
    run.add_argument("--embedded", action="store_true",
                     help="start a Ray for this job even when a `slimray up` session is up")  # fmt: skip
    run.set_defaults(handler=Command("run", "run", tensorflow=True))


def _add_session(sub: Any) -> None:
    up = sub.add_parser("up", help="start a local session: a Ray whose workers stay warm between jobs")
    up.add_argument("--num-cpus", type=int, help="CPUs of the session's Ray (default: this machine's)")
    up.add_argument("--like", help="a job spec: prestart the processes a job like it takes")
    up.add_argument("--workers", type=int, default=2, help="without --like: a job of this many workers")
    up.set_defaults(handler=Command("session", "up"))
    down = sub.add_parser("down", help="stop the local session")
    down.set_defaults(handler=Command("session", "down"))


def _add_schema(sub: Any) -> None:
    schema = sub.add_parser("schema", help="print the job spec's JSON Schema")
    schema.set_defaults(handler=Command("spec", "schema"))


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the job service (HTTP API + /metrics)")
    serve.add_argument("--local", action="store_true", help="start (or reuse) a Ray head here")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--num-cpus", type=int, help="CPUs of the local Ray head")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(handler=Command("serve", "serve"))


def _client_parser(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand that talks to the service over HTTP (slimray.cli.jobs)."""
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("--server", help=f"service URL (default ${SERVER} or 127.0.0.1:8000)")
    parser.set_defaults(handler=Command("jobs", name))
    return parser


def _add_client_commands(sub: Any) -> None:
    submit = _client_parser(sub, "submit", "submit a job spec to the service")
    submit.add_argument("spec")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    status = _client_parser(sub, "status", "list jobs, or show one")
    status.add_argument("id", nargs="?")
    status.add_argument("--state", choices=[state.value for state in JobState])
    status.add_argument("--watch", action="store_true")
    cancel = _client_parser(sub, "cancel", "cancel a job")
    cancel.add_argument("id")
    logs = _client_parser(sub, "logs", "print a job's driver log")
    logs.add_argument("id")


# each adds its subcommands, in the order `slimray --help` lists them
_SUBCOMMANDS = (_add_prune, _add_run, _add_session, _add_schema, _add_serve, _add_client_commands)


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand's flags; nothing heavy is imported to build it (`slimray --help` is quick)."""
    parser = argparse.ArgumentParser(prog="slimray", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _run(command: Command, args: argparse.Namespace) -> int:
    """Import the chosen subcommand's module (only now: it may load Keras, Ray or uvicorn) and run it."""
    if command.tensorflow:
        os.environ.setdefault(TF_LOG_LEVEL, "2")
    # lazy: only the chosen subcommand's module loads, and with it its Keras, Ray or uvicorn
    module = importlib.import_module(f"slimray.cli.{command.module}")
    return getattr(module, command.function)(args)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv) and run the subcommand; a CliError is one red line, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args.handler, args)
    except CliError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2
