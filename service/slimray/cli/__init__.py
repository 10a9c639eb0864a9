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

from slimray.core.jobstate import JobState

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
    source = _check_prune_paths(args)

    import keras

    from slimray.pruning import Pruner

    criterion, planner = _prune_criterion_and_planner(args)
    model = keras.models.load_model(source, compile=False)
    try:
        result = Pruner(criterion, planner, strict=args.strict).prune(model, args.sparsity)
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


def _check_prune_paths(args: argparse.Namespace) -> Path:
    """The model to prune must be an existing .keras file, and the output a .keras path."""
    source = Path(args.model)
    if not source.is_file():
        raise CliError(f"model file not found: {source}")
    if source.suffix != ".keras":
        raise CliError(f"model must be a .keras file. Received: {source}")
    if Path(args.output).suffix != ".keras":
        raise CliError(f"--output must end in .keras. Received: {args.output}")
    return source


def _prune_criterion_and_planner(args: argparse.Namespace) -> tuple[Any, Any]:
    """The criterion and mask planner the flags name; `slimray prune` has no data, so only
    weight criteria are accepted."""
    from slimray.pruning import MaskPlanner, get_criterion

    try:
        criterion = get_criterion(args.criterion)
        planner = MaskPlanner(scope=args.scope, min_channels=args.min_channels, round_to=args.round_to)
    except (TypeError, ValueError) as err:
        raise CliError(str(err)) from err
    if criterion.needs_data:
        raise CliError(
            f"--criterion {args.criterion} scores activations and needs data; "
            "`slimray prune` uses weight criteria: l1, l2, bn_scale, random"
        )
    return criterion, planner


def _print_prune_report(report: dict[str, Any]) -> None:
    table = Table(title=f"Channel groups pruned at sparsity {report['sparsity']}")
    for col in ("group", "layers", "size", "kept", "removed"):
        table.add_column(col, justify="right" if col in ("size", "kept", "removed") else "left")
    for g in report["groups"]:
        kept = len(g["kept"])
        table.add_row(g["id"], ", ".join(g["layers"]), str(g["size"]), str(kept), str(g["size"] - kept))
    console.print(table)
    totals = Table(title="Model cost (per sample)")
    for col in ("", "before", "after", "ratio"):
        totals.add_column(col, justify="right")
    for key in ("params", "flops"):
        before, after = report[f"{key}_before"], report[f"{key}_after"]
        totals.add_row(key, _human(before), _human(after), f"{after / max(before, 1):.3f}")
    console.print(totals)
    if report["frozen"]:
        frozen = Table(title="Kept whole: slimray cannot prune through these (--strict refuses them)")
        for col in ("layer", "operation", "FLOPs held whole"):
            frozen.add_column(col, justify="right" if col.startswith("FLOPs") else "left")
        for b in report["frozen"]:
            frozen.add_row(b["path"], b["operation"], f"{b['flops_share']:.1%}")
        console.print(frozen)
    console.print(f"saved {report['output']}  digest {report['digest'][:16]}")


# ------------------------------------------------------------------ run


class _Progress:
    """Live terminal view of a run: step bar, throughput, gain, params, accuracy, events."""

    def __init__(self, quiet: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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
        elif kind == "report":
            gain = data.get("throughput_gain")
            acc = data.get("val_accuracy")
            info = (f"{data['samples_per_second']:,.0f} samples/s"
                    f"{f'  gain {gain:.2f}x' if gain else ''}  params {_human(data['params'])}"
                    f"{f'  val acc {acc:.3f}' if acc is not None else ''}")  # fmt: skip
            self.bar.update(self.task, completed=data["step"], info=info)
            event = data.get("event")
            if event:
                d = event["durations"]
                self._say(
                    f"prune @ step {event['step']}: channels {event['channels_before']} -> "
                    f"{event['channels_after']}, params {_human(event['params_before'])} -> "
                    f"{_human(event['params_after'])} (score {d.get('score', 0) * 1e3:.0f} ms, "
                    f"allreduce {d.get('allreduce', 0) * 1e3:.1f} ms, surgery "
                    f"{d.get('surgery', 0) * 1e3:.0f} ms, retrace {d.get('retrace', 0) * 1e3:.0f} ms)"
                )
        elif kind == "worker_error":
            self._say(f"[yellow]worker error[/]: {data}")
        elif kind == "end":
            self.bar.stop()

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.bar.console.print(text, highlight=False, soft_wrap=True)


def _print_run_summary(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['job']}: {report['state']}")
    table.add_column("")
    table.add_column("dense", justify="right")
    table.add_column("final", justify="right")
    dense, final = report.get("dense_samples_per_second"), report.get("final_samples_per_second")
    table.add_row("train samples/s", f"{dense:,.0f}" if dense else "-", f"{final:,.0f}" if final else "-")
    table.add_row(
        "parameters",
        _human(report["params"]["before"] or 0),
        _human(report["params"]["after"] or 0),
    )
    table.add_row("FLOPs/sample", _human(report["flops_per_sample"]["before"] or 0),
                  _human(report["flops_per_sample"]["after"] or 0))  # fmt: skip
    acc = report.get("exported_accuracy")
    table.add_row("val accuracy (exported model)", "", f"{acc:.4f}" if acc is not None else "-")
    console.print(table)
    events = report.get("prune_events") or []
    for blocker in events[-1].get("frozen", []) if events else []:
        console.print(f"kept whole (slimray cannot prune through it): {blocker['path']} "
                      f"({blocker['operation']}), {blocker['flops_share']:.1%} of FLOPs held",
                      highlight=False, soft_wrap=True)  # fmt: skip
    gain = report.get("throughput_gain")
    if gain:
        console.print(f"throughput gain {gain:.2f}x over the unpruned phase; "
                      f"run directory {report.get('run_dir', '')}")  # fmt: skip
    _print_wall_time(report.get("wall_time"))


def _print_wall_time(wall: dict[str, float] | None) -> None:
    """Where every second of the job went (`slimray.runtime.breakdown.PHASES`)."""
    if not wall:
        return
    from slimray.runtime.breakdown import PHASES

    total = wall["total"] or 1.0
    table = Table(title=f"wall time {wall['total']:.1f} s, by phase")
    for col, justify in (("phase", "left"), ("seconds", "right"), ("share", "right"), ("what", "left")):
        table.add_column(col, justify=justify)
    for name, what in PHASES.items():
        table.add_row(name, f"{wall.get(name, 0.0):.1f}", f"{wall.get(name, 0.0) / total:.0%}", what)
    console.print(table)


def _cmd_run(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from slimray.core.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        raise CliError(str(err)) from err
    from slimray.core.storage import StorageError
    from slimray.runtime.trainer import RunDirectoryExists, run_job

    try:
        result = run_job(spec, address=args.address, overwrite=args.overwrite,
                         on_event=_Progress(args.quiet))  # fmt: skip
    except (RunDirectoryExists, StorageError, ValueError) as err:
        raise CliError(str(err)) from err
    result.report["run_dir"] = str(result.run_dir)
    _print_run_summary(result.report)
    if result.state != JobState.SUCCEEDED:
        console.print(f"[bold red]job failed:[/] {result.error}", highlight=False)
        return 1
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from slimray.core.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


# ------------------------------------------------------------------ service


def _service_token(settings):
    """The admin token: SLIMRAY_API_TOKEN, else one kept (mode 0600) in the state directory."""
    from pydantic import SecretStr

    from slimray.service.localray import private_secret

    if settings.api_token is not None:
        return settings
    token_file = settings.db_path.parent / "token"
    token = private_secret(token_file)
    console.print(f"no SLIMRAY_API_TOKEN set: using the token in {token_file}")
    return settings.model_copy(update={"api_token": SecretStr(token)})


def _local_ray(settings, num_cpus: int | None):
    """Reuse a Ray job server answering at ray_address (with our token), else start one;
    returns (settings with the Ray token, the head we started or None)."""
    from pydantic import SecretStr

    from slimray.service.localray import LocalRay, LocalRayError, answers, private_secret

    token = (settings.ray_token.get_secret_value() if settings.ray_token
             else private_secret(settings.db_path.parent / "ray_token"))  # fmt: skip
    settings = settings.model_copy(update={"ray_token": SecretStr(token)})
    state_dir = settings.db_path.parent
    if answers(settings.ray_address, token):
        head = LocalRay.adopt(state_dir, settings.ray_address, token)
        console.print(f"using the Ray head at {settings.ray_address}" + (" (ours)" if head else ""))
        return settings, head
    from slimray.core.envvars import RAY_GCS_PORT

    gcs_port = int(os.environ.get(RAY_GCS_PORT, "6380"))
    try:
        head = LocalRay.start(settings.ray_address, token, num_cpus, gcs_port)
    except LocalRayError as err:
        raise CliError(f"could not start a local Ray head: {err}") from err
    head.record(state_dir)
    console.print(f"started a local Ray head (token auth on), job server at {settings.ray_address}")
    return settings, head


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from slimray.core.storage import apply_umask
    from slimray.service.api.main import create_app
    from slimray.service.settings import get_settings

    # the store, run directories and logs are the service user's alone, unless SLIMRAY_UMASK
    # (the image: 0007) shares them with group 0
    try:
        apply_umask(0o077)
    except ValueError as err:
        raise CliError(str(err)) from err
    overrides: dict[str, Any] = {}
    if args.local:
        overrides["driver_python"] = sys.executable
        overrides["service_url"] = f"http://{args.host}:{args.port}"
    try:
        settings = _service_token(get_settings(**overrides))
    except (ValueError, OSError) as err:  # bad settings; a state directory it cannot write
        raise CliError(str(err)) from err
    head = None
    if args.local:
        settings, head = _local_ray(settings, args.num_cpus)
        # uvicorn re-raises SIGTERM after its graceful shutdown: exit through `finally` instead
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        console.print(f"slimray service on http://{args.host}:{args.port} (docs at /docs)")
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    finally:
        if head is not None:
            console.print("stopping the local Ray head")
            head.stop(state_dir=settings.db_path.parent)
    return 0


def _client(args: argparse.Namespace):
    from slimray.cli.client import ServiceClient

    return ServiceClient(args.server)


def _service_call(fn):
    from slimray.cli.client import ServiceError

    try:
        return fn()
    except ServiceError as err:
        raise CliError(str(err)) from err


def _job_line(job: dict[str, Any]) -> str:
    p, m = job.get("progress") or {}, job.get("metrics") or {}
    parts = [f"{job['id']}  {job['name']}  {job['state']}"]
    if p.get("step") is not None:
        parts.append(f"step {p['step']}/{p.get('total_steps')}")
    if m.get("samples_per_second"):
        parts.append(f"{m['samples_per_second']:,.0f} samples/s")
    if m.get("throughput_gain"):
        parts.append(f"gain {m['throughput_gain']:.2f}x")
    if m.get("params"):
        parts.append(f"params {_human(m['params'])}")
    if m.get("val_accuracy") is not None:
        parts.append(f"val acc {m['val_accuracy']:.3f}")
    parts.append(f"prune events {len(job.get('prune_events') or [])}")
    if job.get("error"):
        parts.append(f"error: {job['error'][:300]}")
    return "  ".join(parts)


def _watch(client, job_id: str, interval: float = 2.0) -> dict[str, Any]:
    import time

    last = None
    while True:
        job = _service_call(lambda: client.get(job_id))
        line = _job_line(job)
        if line != last:
            console.print(line, highlight=False, soft_wrap=True)
            last = line
        if JobState(job["state"]).is_terminal:
            return job
        time.sleep(interval)


def _cmd_submit(args: argparse.Namespace) -> int:
    from slimray.core.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        raise CliError(str(err)) from err
    client = _client(args)
    created = _service_call(lambda: client.submit(spec.model_dump(mode="json")))
    console.print(f"submitted job {created['id']} ({created['state']})")
    if not args.wait:
        return 0
    job = _watch(client, created["id"])
    return 0 if job["state"] == JobState.SUCCEEDED else 1


def _cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.id is None:
        listing = _service_call(lambda: client.list(args.state))
        table = Table(title=f"{listing['total']} jobs")
        for col in ("id", "name", "state", "step", "samples/s", "gain", "events"):
            table.add_column(col)
        for job in listing["jobs"]:
            p, m = job["progress"], job["metrics"]
            gain = m.get("throughput_gain")
            table.add_row(job["id"], job["name"], job["state"],
                          f"{p.get('step', '-')}/{p.get('total_steps', '-')}",
                          f"{m.get('samples_per_second') or 0:,.0f}",
                          f"{gain:.2f}x" if gain else "-", str(len(job["prune_events"])))  # fmt: skip
        console.print(table)
        return 0
    if args.watch:
        job = _watch(client, args.id)
    else:
        job = _service_call(lambda: client.get(args.id))
        console.print(_job_line(job), highlight=False, soft_wrap=True)
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    job = _service_call(lambda: _client(args).cancel(args.id))
    console.print(f"job {job['id']} {job['state']}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    print(_service_call(lambda: _client(args).logs(args.id)), end="")
    return 0


# ------------------------------------------------------------------ entry point


def _add_prune(sub: Any) -> None:
    prune = sub.add_parser("prune", help="one-shot structured pruning of a saved .keras model")
    prune.add_argument("model", help="input .keras file")
    prune.add_argument("--sparsity", type=float, required=True, help="fraction of channels to remove")
    prune.add_argument("--output", required=True, help="output .keras file")
    prune.add_argument("--criterion", default="l1", help="l1, l2, bn_scale, random")
    prune.add_argument("--scope", default="local", choices=["local", "global"])
    prune.add_argument("--round-to", type=int, default=1, help="kept channels a multiple of N")
    prune.add_argument("--min-channels", type=int, default=1, help="never keep fewer per group")
    prune.add_argument("--report", help="write a JSON report here")
    prune.add_argument("--strict", action="store_true",
                       help="refuse a model with layers slimray cannot prune through (default: keep "
                            "their channels whole and prune the rest)")  # fmt: skip
    prune.set_defaults(func=_cmd_prune)


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a training job on Ray (embedded, or --address)")
    run.add_argument("spec", help="job spec, YAML or JSON")
    run.add_argument("--address", help="join this Ray cluster instead of starting one")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no live progress")
    run.set_defaults(func=_cmd_run)


def _add_schema(sub: Any) -> None:
    schema = sub.add_parser("schema", help="print the job spec's JSON Schema")
    schema.set_defaults(func=_cmd_schema)


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the job service (HTTP API + /metrics)")
    serve.add_argument("--local", action="store_true", help="start (or reuse) a Ray head here")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--num-cpus", type=int, help="CPUs of the local Ray head")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=_cmd_serve)


def _client_parser(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand that talks to the service over HTTP."""
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("--server", help="service URL (default $SLIMRAY_SERVER or 127.0.0.1:8000)")
    return parser


def _add_client_commands(sub: Any) -> None:
    submit = _client_parser(sub, "submit", "submit a job spec to the service")
    submit.add_argument("spec")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.set_defaults(func=_cmd_submit)
    status = _client_parser(sub, "status", "list jobs, or show one")
    status.add_argument("id", nargs="?")
    status.add_argument("--state", choices=[state.value for state in JobState])
    status.add_argument("--watch", action="store_true")
    status.set_defaults(func=_cmd_status)
    cancel = _client_parser(sub, "cancel", "cancel a job")
    cancel.add_argument("id")
    cancel.set_defaults(func=_cmd_cancel)
    logs = _client_parser(sub, "logs", "print a job's driver log")
    logs.add_argument("id")
    logs.set_defaults(func=_cmd_logs)


# each adds its subcommands, in the order `slimray --help` lists them
_SUBCOMMANDS = (_add_prune, _add_run, _add_schema, _add_serve, _add_client_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slimray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
