"""Faults as a benchmark, injected from outside the job: the shipped example (or its 4x-long
variant) run by the `slimray` CLI (or the service) on a multi-node Ray cluster on loopback, while a
worker is SIGKILLed or SIGSTOPped by PID, the newest checkpoint truncated, a node removed, the
driver killed, or a worker killed while the group starts. Writes results/faults.{json,md}
(faults_long.{json,md} with --long).

    ../.venv/bin/python bench_faults.py [--faults a,b,...] [--repeats N] [--long] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchlib import RESULTS, write
from faults.cluster import LocalCluster
from faults.jobs import CliJob, JobEnd, ServiceJob
from faults.kinds import BASELINE, FAULTS, Fault, Injection, Plan, Target, fault
from faults.rundir import read_report
from faults.spec import accepts, collective_timeout, elastic_workers, example, job_spec
from faults.table import RunRecord, runs_table, summarize, summary_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", default=",".join(FAULTS), help="letters or names: a,b,c,d,e,f")
    p.add_argument("--repeats", type=int, default=10, help="runs of each fault (and of the baseline)")
    p.add_argument("--long", action="store_true", help="the 4x-long variant of the example")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--seed", type=int, default=0, help="seeds the random worker and moment")
    p.add_argument("--collective-timeout", type=float, default=15.0,
                   help="failure.collective_timeout_seconds, where the spec has the setting")  # fmt: skip
    p.add_argument("--hang-hold", type=float, default=90.0,
                   help="seconds a worker stays stopped when the spec has no collective timeout")  # fmt: skip
    p.add_argument("--note", default="", help="a sentence for faults.md (e.g. which code was measured)")
    p.add_argument("--keep", action="store_true", help="keep each run's directory and logs")
    p.add_argument("--from-json", type=Path, default=None,
                   help="re-summarize the runs stored in a faults.json instead of measuring")  # fmt: skip
    args = p.parse_args(argv)
    args.kinds = [fault(name.strip()) for name in args.faults.split(",") if name.strip()]
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1; received: {args.repeats}")
    return args


def run_trial(kind: Fault, repeat: int, args: argparse.Namespace, plan: Plan, limit: float,
              rng: random.Random) -> RunRecord:  # fmt: skip
    """One job on a fresh cluster with `kind` injected from a thread; torn down by PID after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"faults-{kind.name}-"))
    began, cluster, job = time.monotonic(), LocalCluster(), None
    try:
        cluster.start()
        spec = _spec(workdir, args, kind)
        job = (ServiceJob if kind.via_service else CliJob)(cluster, spec, workdir)
        end, injection = kind.run(Target(cluster, job, rng, plan), limit)
        record = _record(kind, repeat, end, injection, job)
    except Exception as err:  # a harness failure is one bad run, not the end of the benchmark
        record = RunRecord(kind.name, repeat, "harness error", time.monotonic() - began, False, False,
                           note=f"{type(err).__name__}: {err}")  # fmt: skip
    finally:
        if job is not None:
            job.stop()
        cluster.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    record.injection["trial_seconds"] = round(time.monotonic() - began, 1)
    what = record.injection.get("what") or "-"
    print(f"[{kind.name} #{repeat}] {record.state}, wall {record.wall_seconds:.0f} s, recovered "
          f"{record.recovered}, {what} {record.note[-300:]}", flush=True)  # fmt: skip
    return record


def _spec(workdir: Path, args: argparse.Namespace, kind: Fault) -> dict:
    return job_spec(workdir / "run", args.long, args.collective_timeout, kind.elastic)


def _record(kind: Fault, repeat: int, end: JobEnd, injection: Injection, job) -> RunRecord:
    """The run judged: recovered = injected, succeeded and (for a hang) the system ended the
    stopped worker itself; the report's architecture, accuracy and restarts."""
    report = read_report(job.run_dir)
    detected = not kind.needs_detection or bool(injection.detail.get("ended_by_system"))
    injected = injection.injected or kind is BASELINE
    recovered = injected and end.state == "succeeded" and detected
    note = end.detail if end.state != "succeeded" else ""
    if not injected:
        note = f"not injected: {injection.detail.get('why')}. {note}"
    elif not detected:
        held = injection.detail.get("stopped_seconds")
        note = f"hang not detected: the stopped worker was still there after {held} s. {note}"
    if kind.via_service:
        injection.detail["service_transitions"] = job.transitions()
    return RunRecord(kind.name, repeat, end.state, round(end.wall_seconds, 1), recovered, injected,
                     asdict(injection), report.params, report.accuracy, report.restarts_from_steps,
                     report.restart_causes, note.strip())  # fmt: skip


def plan_from(baseline: RunRecord | None, args: argparse.Namespace, has_timeout: bool) -> tuple[Plan, float]:
    """The random window (half the training after the baseline's first checkpoint), how long a
    hang lasts, and each fault run's wall limit, from the round's uninterrupted run."""
    wall = baseline.wall_seconds if baseline and baseline.state == "succeeded" else 120.0
    first = (baseline.injection.get("detail") or {}).get("first_checkpoint_seconds") if baseline else None
    window = max(2.0, 0.5 * (wall - (first or wall / 4)))
    hold = args.collective_timeout + 60 if has_timeout else args.hang_hold
    return Plan(window=window, hold=hold), max(300.0, 3 * wall + hold)


def measure(args: argparse.Namespace) -> tuple[list[RunRecord], dict]:
    rng = random.Random(args.seed)
    base = example(args.long)
    has_timeout = accepts(base, collective_timeout(args.collective_timeout))
    settings = {"faults": [k.name for k in args.kinds], "repeats": args.repeats, "long": args.long,
                "seed": args.seed, "collective_timeout_in_spec": has_timeout,
                "elastic_in_spec": accepts(base, elastic_workers(2)), "cluster": "head (0 CPUs) + 2 worker "
                "nodes (1 CPU each), loopback", "note": args.note}  # fmt: skip
    records = []
    for repeat in range(args.repeats):
        baseline = run_trial(BASELINE, repeat, args, Plan(window=0, hold=0), 900.0, rng)
        records.append(baseline)
        plan, limit = plan_from(baseline, args, has_timeout)
        settings.setdefault("plans", []).append({**asdict(plan), "wall_limit": limit})
        records += [run_trial(kind, repeat, args, plan, limit, rng) for kind in args.kinds]
    return records, settings


def report(records: list[RunRecord], settings: dict, args: argparse.Namespace, measured=None) -> None:
    baselines = {r.repeat: r for r in records if r.fault == BASELINE.name}
    summaries = [summarize(k, [r for r in records if r.fault == k.name], baselines) for k in args.kinds]
    text = (f"{args.note}\n\n" if args.note else "") + summary_table(summaries, list(baselines.values()))
    text += ("\nTime lost: wall time of a recovered run minus the uninterrupted run's of the same "
             "repeat (the service's run (e) also counts submission through the service). Recovered: "
             "the job succeeded after the fault was injected; for (b) also the stopped worker ended "
             "by the system (the hang detected) before it was continued. A SIGSTOP freezes the whole "
             "process, Ray's own threads too, so Ray Train's polling of its workers can notice it "
             "without any collective timeout: (b) is a frozen worker, not a live one stuck inside a "
             "collective. Trial s: the whole trial, the cluster's start and stop included.\n\n"
             "## Runs\n\n")  # fmt: skip
    text += runs_table(records)
    runs, table = [asdict(r) for r in records], {s.fault: asdict(s) for s in summaries}
    name = "faults_long" if settings.get("long") else "faults"  # the two variants keep their own files
    write(name, args.out, settings, runs, table, text, measured=measured)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        measured = json.loads(args.from_json.read_text())
        records = [RunRecord(**r) for r in measured["repeats"]]
        args.kinds = [fault(name) for name in measured["settings"]["faults"]]
        args.note = measured["settings"].get("note", "")
        report(records, measured["settings"], args, measured)
        return
    records, settings = measure(args)
    report(records, settings, args)


if __name__ == "__main__":
    main()
