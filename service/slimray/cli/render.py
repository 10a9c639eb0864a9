"""What the CLI prints with rich: the prune report, a run's live progress and summary, job lines.
Pure functions of the report and job dicts, so they are tested without Keras, Ray or a service."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slimray.core.records import MaskCheck, ProgressReport, PruneEvent, Rollback
from slimray.core.startup import STARTUP_PARTS, StartupBreakdown
from slimray.runtime.breakdown import PHASES

console = Console()


def human(n: float) -> str:
    """A count in at most four significant digits with a K/M/G/T/P suffix: 1234567 -> 1.235M."""
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n:.4g}P"


def say(text: str) -> None:
    """One line as written: no rich highlighting, long lines kept whole for grep."""
    console.print(text, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------ what a prune leaves behind


def approximate_line(paths: list[str]) -> str | None:
    """The layers whose surgery is not exact (a LayerNormalization over a pruned axis), or None."""
    return f"Approximate (statistics change): {', '.join(paths)}" if paths else None


def _prune_rule(report: dict[str, Any]) -> str:
    """`slimray prune`'s rule as the user gave it, with what it reached when that was an outcome."""
    reached = f"sparsity reached {report.get('sparsity_reached', 0.0):.3f}"
    if report.get("threshold") is not None:
        return f"threshold {report['threshold']} ({reached})"
    if target := report.get("target"):
        ((metric, keep),) = target.items()
        return f"{metric} target {keep} (kept {report['kept'][metric]:.3f}, {reached})"
    return f"sparsity {report['sparsity']}"


def _groups_table(report: dict[str, Any]) -> Table:
    rule = _prune_rule(report)
    table = Table(title=f"Channel groups pruned at {rule}")
    for col in ("group", "layers", "size", "kept", "removed"):
        table.add_column(col, justify="right" if col in ("size", "kept", "removed") else "left")
    for g in report["groups"]:
        kept = len(g["kept"])
        table.add_row(g["id"], ", ".join(g["layers"]), str(g["size"]), str(kept), str(g["size"] - kept))
    return table


def _cost_table(report: dict[str, Any]) -> Table:
    totals = Table(title="Model cost (per sample)")
    for col in ("", "before", "after", "ratio"):
        totals.add_column(col, justify="right")
    for key in ("params", "flops"):
        before, after = report[f"{key}_before"], report[f"{key}_after"]
        totals.add_row(key, human(before), human(after), f"{after / max(before, 1):.3f}")
    return totals


def _kept_whole_table(blockers: list[dict[str, Any]]) -> Table:
    table = Table(title="Kept whole: slimray cannot prune through these (--strict refuses them)")
    for col in ("layer", "operation", "FLOPs held whole"):
        table.add_column(col, justify="right" if col.startswith("FLOPs") else "left")
    for b in blockers:
        table.add_row(b["path"], b["operation"], f"{b['flops_share']:.1%}")
    return table


def print_prune_report(report: dict[str, Any]) -> None:
    """`slimray prune`'s tables: groups pruned, cost before/after, layers kept whole, approximations."""
    console.print(_groups_table(report))
    console.print(_cost_table(report))
    if blockers := report["kept_whole"]:
        console.print(_kept_whole_table(blockers))
    if line := approximate_line(report["approximate"]):
        say(line)
    console.print(f"saved {report['output']}  digest {report['digest'][:16]}")


# ------------------------------------------------------------------ a run


def _ms(seconds: float | None) -> float:
    return (seconds or 0.0) * 1e3


def event_line(event: PruneEvent) -> str:
    """One prune event as it happens: channels and params before -> after, and its durations."""
    d = event.durations
    rule = "" if event.threshold is None else f" (threshold {event.threshold}: sparsity {event.sparsity:.1%})"
    if goal := event.cost_target:
        rule = (f" ({goal.metric} target {goal.keep:.1%} of dense: kept {goal.kept:.1%}, "
                f"sparsity {event.sparsity:.1%})")  # fmt: skip
    return (
        f"prune @ step {event.step}{rule}: channels {event.channels_before} -> "
        f"{event.channels_after}, params {human(event.params_before)} -> "
        f"{human(event.params_after)} (score {_ms(d.score):.0f} ms, "
        f"allreduce {_ms(d.allreduce):.1f} ms, surgery "
        f"{_ms(d.surgery):.0f} ms, retrace {_ms(d.retrace):.0f} ms)"
    )


def rollback_line(rollback: Rollback) -> str:
    """An event the accuracy budget undid, as it happens: why, and what comes next."""
    then = (f"retrying at {rollback.retry_level:.3g}" if rollback.retry_level is not None
            else "pruning stops")  # fmt: skip
    return (
        f"rollback @ step {rollback.step}: the event of step {rollback.event_step} (to {rollback.level:.3g}) "
        f"left val accuracy {rollback.accuracy:.4f}, more than {rollback.budget:g} below "
        f"{rollback.reference:.4f}; its model restored, {then}"
    )


def auto_start_line(checks: list[MaskCheck], shown: int = 8) -> str:
    """When an auto schedule started pruning and why, with the mask's last distances."""
    start = next((c for c in checks if c.start), None)
    measured = [c for c in checks if c.distance is not None][-shown:]
    distances = ", ".join(f"{c.step}: {c.distance:.3f}" for c in measured) or "none measured"
    if start is None:
        return f"auto schedule: pruning never started (mask change by step: {distances})"
    why = ("the mask had settled" if start.start == "settled"
           else "its latest start came before the mask settled")  # fmt: skip
    return f"auto schedule: pruning started at step {start.step}, {why} (mask change by step: {distances})"


class RunProgress:
    """Live terminal view of a run (`run_job`'s on_event): step bar, throughput, gain, params,
    accuracy, and a line per prune event; `quiet` shows nothing."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = Progress(
            TextColumn("[bold]step"), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
            disable=quiet,
        )  # fmt: skip
        self.task = None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            self.bar.start()
            self.task = self.bar.add_task("train", total=data["total_steps"], info="starting")
            self._say(f"{data['world']} workers, {data['n_train']} training samples, "
                      f"{data['total_steps']} steps -> {data['run_dir']}")  # fmt: skip
        elif kind == "startup":
            self._say(startup_line(StartupBreakdown.model_validate(data)))
        elif kind == "report":
            self._on_report(data)
        elif kind == "worker_error":
            self._say(f"[yellow]worker error[/]: {data}")
        elif kind == "end":
            self.bar.stop()

    def _on_report(self, data: dict[str, Any]) -> None:
        report = ProgressReport.model_validate(data)
        gain, acc = report.throughput_gain, report.val_accuracy
        info = (f"{report.samples_per_second:,.0f} samples/s"
                f"{f'  gain {gain:.2f}x' if gain else ''}  params {human(report.params)}"
                f"{f'  val acc {acc:.3f}' if acc is not None else ''}")  # fmt: skip
        self.bar.update(self.task, completed=report.step, info=info)
        if report.event is not None:
            self._say(event_line(report.event))
        if report.rollback is not None:
            self._say(f"[yellow]{rollback_line(report.rollback)}[/]")

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.bar.console.print(text, highlight=False, soft_wrap=True)


def _summary_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['job']}: {report['state']}")
    table.add_column("")
    table.add_column("dense", justify="right")
    table.add_column("final", justify="right")
    dense, final = report.get("dense_samples_per_second"), report.get("final_samples_per_second")
    table.add_row("train samples/s", f"{dense:,.0f}" if dense else "-", f"{final:,.0f}" if final else "-")
    for label, key in (("parameters", "params"), ("FLOPs/sample", "flops_per_sample")):
        table.add_row(label, human(report[key]["before"] or 0), human(report[key]["after"] or 0))
    acc = report.get("exported_accuracy")
    table.add_row("val accuracy (exported model)", "", f"{acc:.4f}" if acc is not None else "-")
    return table


def print_run_summary(report: dict[str, Any]) -> None:
    """A finished run: dense vs final cost and speed, what its last prune kept whole or left
    approximate, the throughput gain, and where the wall time went."""
    console.print(_summary_table(report))
    events = report.get("prune_events") or []
    if events:
        _print_last_event(PruneEvent.model_validate(events[-1]))
    for rollback in report.get("rollbacks") or []:
        say(rollback_line(Rollback.model_validate(rollback)))
    if "mask_checks" in report:
        say(auto_start_line([MaskCheck.model_validate(c) for c in report["mask_checks"]]))
    gain = report.get("throughput_gain")
    if gain:
        console.print(f"throughput gain {gain:.2f}x over the unpruned phase; "
                      f"run directory {report.get('run_dir', '')}")  # fmt: skip
    print_wall_time(report.get("wall_time"))
    print_startup(report.get("startup"))


def startup_line(startup: StartupBreakdown) -> str:
    """The start-up in one line: its total and each part, in the order they happen."""
    parts = ", ".join(f"{name.replace('_', ' ')} {seconds:.1f}" for name, seconds in startup.parts().items())
    return f"started in {startup.total:.1f} s: {parts}"


def print_startup(startup: dict[str, Any] | None) -> None:
    """The wall time's `startup` phase by part (`core.startup.STARTUP_PARTS`); nothing if unknown."""
    if not startup:
        return
    breakdown = StartupBreakdown.model_validate(startup)
    total = breakdown.total or 1.0
    table = Table(title=f"start-up {breakdown.total:.1f} s, by part")
    for col, justify in (("part", "left"), ("seconds", "right"), ("share", "right"), ("what", "left")):
        table.add_column(col, justify=justify)
    for name, what in STARTUP_PARTS.items():
        seconds = getattr(breakdown, name)
        table.add_row(name, f"{seconds:.1f}", f"{seconds / total:.0%}", what)
    if breakdown.first_trace is not None:
        trace = f"{breakdown.first_trace:.1f}"
        table.add_row("(first trace)", trace, "", "the first step's trace: counted in `tracing`")
    console.print(table)


def _print_last_event(event: PruneEvent) -> None:
    """What the run's last prune event kept whole, and where its surgery was approximate."""
    for layer in event.kept_whole:
        say(f"kept whole (slimray cannot prune through it): {layer.path} "
            f"({layer.operation}), {layer.flops_share:.1%} of FLOPs held")  # fmt: skip
    if line := approximate_line(event.approximate):
        say(line)


def print_wall_time(wall: dict[str, float] | None) -> None:
    """Where every second of the job went (`slimray.runtime.breakdown.PHASES`); nothing if unknown."""
    if not wall:
        return
    total = wall["total"] or 1.0
    table = Table(title=f"wall time {wall['total']:.1f} s, by phase")
    for col, justify in (("phase", "left"), ("seconds", "right"), ("share", "right"), ("what", "left")):
        table.add_column(col, justify=justify)
    for name, what in PHASES.items():
        table.add_row(name, f"{wall.get(name, 0.0):.1f}", f"{wall.get(name, 0.0) / total:.0%}", what)
    console.print(table)


# ------------------------------------------------------------------ jobs of the service


def job_line(job: dict[str, Any]) -> str:
    """One job on one line: id, name, state, step, speed, gain, params, accuracy, events, error."""
    p, m = job.get("progress") or {}, job.get("metrics") or {}
    parts = [f"{job['id']}  {job['name']}  {job['state']}"]
    if p.get("step") is not None:
        parts.append(f"step {p['step']}/{p.get('total_steps')}")
    if m.get("samples_per_second"):
        parts.append(f"{m['samples_per_second']:,.0f} samples/s")
    if m.get("throughput_gain"):
        parts.append(f"gain {m['throughput_gain']:.2f}x")
    if m.get("params"):
        parts.append(f"params {human(m['params'])}")
    if m.get("val_accuracy") is not None:
        parts.append(f"val acc {m['val_accuracy']:.3f}")
    parts.append(f"prune events {len(job.get('prune_events') or [])}")
    if m.get("rollbacks"):
        parts.append(f"rolled back {m['rollbacks']} (accuracy budget)")
    if rule := _rule_part(job):
        parts.append(rule)
    if job.get("error"):
        parts.append(f"error: {job['error'][:300]}")
    return "  ".join(parts)


def _rule_part(job: dict[str, Any]) -> str | None:
    """A target job's goal against what it kept (the report's verdict once it ended), or the
    threshold the last event applied; None for a sparsity job."""
    outcome = (job.get("report") or {}).get("target")
    if outcome:
        kept = "nothing yet" if outcome["kept"] is None else f"kept {outcome['kept']:.1%}"
        verdict = "reached" if outcome["reached"] else f"missed: {outcome['limited_by']}"
        return f"{outcome['metric']} target {outcome['target']:.1%}: {kept} ({verdict})"
    last = (job.get("prune_events") or [{}])[-1]
    if goal := last.get("cost_target"):
        return f"{goal['metric']} {goal['kept']:.1%} of dense (this step's target {goal['keep']:.1%})"
    if last.get("threshold") is not None:
        return f"threshold {last['threshold']}"
    return None


def jobs_table(listing: dict[str, Any]) -> Table:
    """The service's job listing (`GET /v1/jobs`): one row a job, with its step, speed and gain."""
    table = Table(title=f"{listing['total']} jobs")
    for col in ("id", "name", "state", "step", "samples/s", "gain", "events"):
        table.add_column(col)
    for job in listing["jobs"]:
        p, m = job["progress"], job["metrics"]
        gain = m.get("throughput_gain")
        table.add_row(job["id"], job["name"], job["state"],
                      f"{p.get('step', '-')}/{p.get('total_steps', '-')}",
                      f"{m.get('samples_per_second') or 0:,.0f}",
                      f"{gain:.2f}x" if gain else "-", str(job["prune_event_count"]))  # fmt: skip
    return table
