"""The processes a fault is aimed at, found from outside by PID: Ray Train's worker actors among
a cluster's processes, and a Ray job's driver (as Ray's job API reports it)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

import httpx
import psutil

TRAIN_WORKER = "RayTrainWorker"  # Ray titles an actor's process `ray::<class>[.<method>]`


def actor_processes(roots: Iterable[psutil.Process], actor_class: str = TRAIN_WORKER) -> list[psutil.Process]:
    """Live descendants of `roots` (a cluster's nodes) whose title names `actor_class`."""
    found = []
    for root in roots:
        with contextlib.suppress(psutil.Error):
            for proc in [root, *root.children(recursive=True)]:
                if _titled(proc, actor_class) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return sorted({p.pid: p for p in found}.values(), key=lambda p: p.pid)


def _titled(proc: psutil.Process, actor_class: str) -> bool:
    try:
        title = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return title.startswith(f"ray::{actor_class}")


def send(proc: psutil.Process, sig: int) -> bool:
    """Signal `proc` if it is still the same live process; False if it is gone (or a zombie)."""
    if is_gone(proc):
        return False
    try:
        proc.send_signal(sig)
        return True
    except psutil.Error:
        return False


def is_gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def driver_pid(dashboard: str, headers: dict[str, str], metadata_key: str, metadata_value: str) -> int | None:
    """The PID of the running driver of the Ray job whose metadata has key=value (Ray's
    `driver_info.pid`), or None while Ray has none."""
    try:
        jobs = httpx.get(f"{dashboard}/api/jobs/", headers=headers, timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return None
    for job in jobs:
        if (job.get("metadata") or {}).get(metadata_key) != metadata_value:
            continue
        if job.get("status") == "RUNNING" and (job.get("driver_info") or {}).get("pid"):
            return int(job["driver_info"]["pid"])
    return None


def kill_pid(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False
