"""`slimray submit/status/cancel/logs`: the job service's client commands, over HTTP.
No TensorFlow or Ray here: a spec is validated with pydantic, then the service takes over."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TypeVar

from slimray.cli.client import ServiceClient, ServiceError
from slimray.cli.entry import CliError
from slimray.cli.render import console, job_line, jobs_table, say
from slimray.cli.spec import read_spec
from slimray.core.jobstate import JobState

T = TypeVar("T")
WATCH_INTERVAL = 2.0  # seconds between polls of a watched job


def _call(fn: Callable[[], T]) -> T:
    """One request; the service's refusal (or absence) becomes a one-line CliError."""
    try:
        return fn()
    except ServiceError as err:
        raise CliError(str(err)) from err


def watch(client: ServiceClient, job_id: str, interval: float = WATCH_INTERVAL) -> dict[str, Any]:
    """Print the job's line whenever it changes, until the job reaches a terminal state."""
    last = None
    while True:
        job = _call(lambda: client.get(job_id))
        line = job_line(job)
        if line != last:
            say(line)
            last = line
        if JobState(job["state"]).is_terminal:
            return job
        time.sleep(interval)


def submit(args: argparse.Namespace) -> int:
    """Submit the spec; with --wait follow it, exiting 1 unless it succeeds."""
    spec = read_spec(args.spec)
    client = ServiceClient(args.server)
    created = _call(lambda: client.submit(spec.model_dump(mode="json")))
    console.print(f"submitted job {created['id']} ({created['state']})")
    if not args.wait:
        return 0
    job = watch(client, created["id"])
    return 0 if JobState(job["state"]) == JobState.SUCCEEDED else 1


def status(args: argparse.Namespace) -> int:
    """A table of jobs (optionally of one --state), or one job's line (followed with --watch)."""
    client = ServiceClient(args.server)
    if args.id is None:
        console.print(jobs_table(_call(lambda: client.list(args.state))))
    elif args.watch:
        watch(client, args.id)
    else:
        say(job_line(_call(lambda: client.get(args.id))))
    return 0


def cancel(args: argparse.Namespace) -> int:
    """Cancel the job and print the state it is now in."""
    job = _call(lambda: ServiceClient(args.server).cancel(args.id))
    console.print(f"job {job['id']} {job['state']}")
    return 0


def logs(args: argparse.Namespace) -> int:
    """Print the job's driver log as the service returns it (its last max_log_bytes)."""
    print(_call(lambda: ServiceClient(args.server).logs(args.id)), end="")
    return 0
