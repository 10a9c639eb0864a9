"""The parser and dispatch: every subcommand names a real function, and only the chosen one's
module (with its Keras, Ray or uvicorn) is imported."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from slimray.cli import main as cli_main
from slimray.cli.entry import CliError, build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_runs_a_function_of_its_module():
    subcommands = _subcommands()
    assert list(subcommands) == ["prune", "run", "up", "down", "schema", "serve", "submit", "status",
                                 "cancel", "logs"]  # fmt: skip
    for name, parser in subcommands.items():
        command = parser.get_default("handler")
        module = importlib.import_module(f"slimray.cli.{command.module}")
        assert callable(getattr(module, command.function)), name


def test_a_light_subcommand_loads_no_heavy_module():
    code = ("import sys; from slimray.cli import main; main(['schema']); "
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stderr.split())
    assert not {m.split(".")[0] for m in loaded} & {"tensorflow", "keras", "ray", "fastapi", "uvicorn"}
    assert not loaded & {"slimray.cli.prune", "slimray.cli.run", "slimray.cli.serve", "slimray.cli.jobs"}


def test_a_cli_error_is_one_line_and_exit_status_2(monkeypatch, capsys):
    def refuse(command, args):
        raise CliError("--sparsity must be in [0, 1). Received: sparsity=1.5")

    monkeypatch.setattr("slimray.cli.entry._run", refuse)
    assert cli_main(["schema"]) == 2
    out = capsys.readouterr().out
    assert out == "error: --sparsity must be in [0, 1). Received: sparsity=1.5\n"


def test_an_unknown_state_is_refused_by_the_parser():
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["status", "--state", "paused"])
    assert exit_.value.code == 2
