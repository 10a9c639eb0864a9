"""The `slimray` command line. Each subcommand imports heavy modules (Keras, Ray) only when run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n:.4g}P"


# ------------------------------------------------------------------ prune


def _cmd_prune(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    source = Path(args.model)
    if not source.is_file():
        raise CliError(f"model file not found: {source}")
    if source.suffix != ".keras":
        raise CliError(f"model must be a .keras file. Received: {source}")
    if Path(args.output).suffix != ".keras":
        raise CliError(f"--output must end in .keras. Received: {args.output}")

    import keras

    from slimray.pruning import MaskPlanner, Pruner, get_criterion

    try:
        criterion = get_criterion(args.criterion)
        planner = MaskPlanner(
            scope=args.scope, min_channels=args.min_channels, round_to=args.round_to
        )
    except (TypeError, ValueError) as err:
        raise CliError(str(err)) from err
    if criterion.needs_data:
        raise CliError(
            f"--criterion {args.criterion} scores activations and needs data; "
            "`slimray prune` uses weight criteria: l1, l2, bn_scale, random"
        )
    model = keras.models.load_model(source, compile=False)
    try:
        result = Pruner(criterion, planner).prune(model, args.sparsity)
    except ValueError as err:
        raise CliError(str(err)) from err
    result.model.save(args.output)
    report = {
        "input": str(source),
        "output": str(args.output),
        "criterion": args.criterion,
        "sparsity": args.sparsity,
        "planner": planner.get_config(),
        **result.summary(),
        "layers_before": [vars(x) for x in result.before.layers],
        "layers_after": [vars(x) for x in result.after.layers],
    }
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    _print_prune_report(report)
    return 0


def _print_prune_report(report: dict[str, Any]) -> None:
    table = Table(title=f"Channel groups pruned at sparsity {report['sparsity']}")
    for col in ("group", "layers", "size", "kept", "removed"):
        table.add_column(col, justify="right" if col in ("size", "kept", "removed") else "left")
    for g in report["groups"]:
        kept = len(g["kept"])
        table.add_row(
            g["id"], ", ".join(g["layers"]), str(g["size"]), str(kept), str(g["size"] - kept)
        )
    console.print(table)
    totals = Table(title="Model cost (per sample)")
    for col in ("", "before", "after", "ratio"):
        totals.add_column(col, justify="right")
    for key in ("params", "flops"):
        before, after = report[f"{key}_before"], report[f"{key}_after"]
        totals.add_row(key, _human(before), _human(after), f"{after / max(before, 1):.3f}")
    console.print(totals)
    console.print(f"saved {report['output']}  digest {report['digest'][:16]}")


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slimray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    prune = sub.add_parser("prune", help="one-shot structured pruning of a saved .keras model")
    prune.add_argument("model", help="input .keras file")
    prune.add_argument(
        "--sparsity", type=float, required=True, help="fraction of channels to remove"
    )
    prune.add_argument("--output", required=True, help="output .keras file")
    prune.add_argument("--criterion", default="l1", help="l1, l2, bn_scale, random")
    prune.add_argument("--scope", default="local", choices=["local", "global"])
    prune.add_argument("--round-to", type=int, default=1, help="kept channels a multiple of N")
    prune.add_argument("--min-channels", type=int, default=1, help="never keep fewer per group")
    prune.add_argument("--report", help="write a JSON report here")
    prune.set_defaults(func=_cmd_prune)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
