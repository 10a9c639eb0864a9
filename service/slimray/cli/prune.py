"""`slimray prune`: one-shot structural pruning of a saved .keras model, with a report.
Imported only when chosen (slimray.cli.entry), so Keras and the pruning engine load at the top."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import keras

from slimray.cli.entry import CliError
from slimray.cli.render import print_prune_report
from slimray.core.target_spec import COST_METRICS
from slimray.pruning import Importance, MaskPlanner, Pruner, PruneResult, criteria, get_criterion


def prune(args: argparse.Namespace) -> int:
    """Prune the model at `args.model` to `args.sparsity` (by `args.threshold`, or within a FLOPs or
    parameter budget), save it, print (and maybe write) the report."""
    source = check_paths(args)
    criterion, planner = criterion_and_planner(args)
    model = keras.models.load_model(source, compile=False)
    try:
        pruner = Pruner(criterion, planner, strict=args.strict)
        result = pruner.prune(model, args.sparsity, threshold=args.threshold, target=cost_target(args))
    except ValueError as err:
        raise CliError(str(err)) from err
    result.model.save(args.output)
    report = build_report(args, source, planner, result)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    print_prune_report(report)
    return 0


def cost_target(args: argparse.Namespace) -> dict[str, float] | None:
    """`--flops f` or `--params f` as the engine's target (None for the other rules)."""
    given = {m: getattr(args, m) for m in COST_METRICS if getattr(args, m) is not None}
    return given or None


def check_paths(args: argparse.Namespace) -> Path:
    """The model to prune must be an existing .keras file, and the output a .keras path."""
    source = Path(args.model)
    if not source.is_file():
        raise CliError(f"model file not found: {source}")
    if source.suffix != ".keras":
        raise CliError(f"model must be a .keras file. Received: {source}")
    if Path(args.output).suffix != ".keras":
        raise CliError(f"--output must end in .keras. Received: {args.output}")
    return source


def weight_criteria() -> list[str]:
    """The registered criteria that score weights alone: the ones `slimray prune` (no data) can use."""
    return [name for name in criteria.names() if not criteria.lookup(name).needs_data]


def criterion_and_planner(args: argparse.Namespace) -> tuple[Importance, MaskPlanner]:
    """The criterion and mask planner the flags name; `slimray prune` has no data, so only
    weight criteria are accepted."""
    try:
        criterion = get_criterion(args.criterion)
        planner = MaskPlanner(scope=args.scope, min_channels=args.min_channels, round_to=args.round_to,
                              normalizer=args.normalizer)  # fmt: skip
    except (TypeError, ValueError) as err:
        raise CliError(str(err)) from err
    if criterion.needs_data:
        raise CliError(
            f"--criterion {args.criterion} scores activations and needs data; "
            f"`slimray prune` uses weight criteria: {', '.join(weight_criteria())}"
        )
    return criterion, planner


def build_report(args: argparse.Namespace, source: Path, planner: MaskPlanner,
                 result: PruneResult) -> dict[str, Any]:  # fmt: skip
    """The JSON report: the flags, the engine's summary, and every layer's shape before and after."""
    summary = result.summary()
    channels_before, channels_after = summary["channels_before"], summary["channels_after"]
    return {
        "input": str(source),
        "output": str(args.output),
        "criterion": args.criterion,
        "sparsity": args.sparsity,
        "threshold": args.threshold,
        "target": cost_target(args),
        "kept": {
            m: round(getattr(result.after, m) / max(getattr(result.before, m), 1), 6) for m in COST_METRICS
        },
        "sparsity_reached": round(1 - channels_after / max(channels_before, 1), 6),
        "planner": planner.get_config(),
        **summary,
        "layers_before": [vars(x) for x in result.before.layers],
        "layers_after": [vars(x) for x in result.after.layers],
    }
