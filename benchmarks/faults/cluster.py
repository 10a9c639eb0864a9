"""A multi-node Ray cluster on this machine for the fault benchmark: a head (no CPUs, the
dashboard for job submission) and worker nodes, each a `ray start --block` in its own session,
temp dir and ports, so that a node can be removed for good and everything torn down by PID."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from faults.procs import actor_processes
from slimray.service.ports import free_port, free_ports

_AGENT_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port")  # fmt: skip
RAY = str(Path(sys.executable).with_name("ray"))


def cluster_env() -> dict[str, str]:
    """This environment with the cluster's own token auth (Ray 2.60's nodes refuse to join a head
    without it here) and no Ray address that would point elsewhere."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class Node:
    name: str
    temp_dir: str
    proc: subprocess.Popen

    def processes(self) -> list[psutil.Process]:
        """The node's `ray start` and everything it started (raylet, workers, agents)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@dataclass
class LocalCluster:
    """`worker_cpus`: one worker node per entry, with that many CPUs (the head has none)."""

    worker_cpus: tuple[int, ...] = (1, 1)
    env: dict[str, str] = field(default_factory=cluster_env)
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: dict[str, Node] = field(default_factory=dict)
    temp_dirs: list[str] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # for the teardown: every one seen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def auth(self) -> dict[str, str]:
        """The header Ray's dashboard (job API) wants."""
        return {"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"}

    def worker_names(self) -> list[str]:
        return [f"node_{i}" for i in range(len(self.worker_cpus))]

    def training_workers(self) -> list[psutil.Process]:
        """The Ray Train worker processes on every node (each node's `ray start` tree)."""
        return actor_processes(p for node in self.nodes.values() for p in node.processes()[:1])

    def start(self, timeout: float = 180) -> LocalCluster:
        self._start("head", ["--head", f"--port={self.gcs_port}", "--num-cpus=0",
                             "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dashboard_port}",
                             f"--ray-client-server-port={free_port()}"])  # fmt: skip
        self._wait_for_port(self.gcs_port, timeout)  # workers join a head that answers
        for name, cpus in zip(self.worker_names(), self.worker_cpus, strict=True):
            self.add_worker(name, cpus)
        self.wait_for_nodes(1 + len(self.worker_cpus), timeout)
        return self

    def add_worker(self, name: str, cpus: int) -> None:
        self._start(name, [f"--address={self.address}", f"--num-cpus={cpus}",
                           f"--resources={json.dumps({name: 1})}"])  # fmt: skip

    def _start(self, name: str, args: list[str]) -> None:
        temp_dir = tempfile.mkdtemp(prefix=f"srf{name[-1]}", dir="/tmp")  # short: socket paths
        cmd = [
            RAY,
            "start",
            "--block",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            "--node-ip-address=127.0.0.1",
            *args,
        ]
        cmd += [
            f"--{option}={port}"
            for option, port in zip(_AGENT_PORTS, free_ports(len(_AGENT_PORTS)), strict=True)
        ]
        log = (Path(temp_dir) / "ray-start.log").open("w")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.nodes[name] = Node(name, temp_dir, proc)
        self.temp_dirs.append(temp_dir)

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        """Until Ray counts `count` live nodes (one process that polls, not one per poll)."""
        code = ("import ray, sys, time\nray.init(address=sys.argv[1], log_to_driver=False)\n"
                "deadline = time.time() + float(sys.argv[3])\n"
                "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]) and time.time() < deadline:\n"
                "    time.sleep(0.5)\nprint(sum(n['Alive'] for n in ray.nodes()))\n")  # fmt: skip
        args = [sys.executable, "-c", code, self.address, str(count), str(timeout)]
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout + 120)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines or int(lines[-1]) < count:
            raise RuntimeError(f"the local Ray cluster did not reach {count} nodes: {proc.stderr[-1000:]}"
                               f"{self._exited()}")  # fmt: skip

    def _exited(self) -> str:
        """Each node whose `ray start` has ended: its exit code and the end of its log (why)."""
        ended = [n for n in self.nodes.values() if n.proc.poll() is not None]
        return "".join(f"\n{n.name} exited {n.proc.returncode}: "
                       f"{(Path(n.temp_dir) / 'ray-start.log').read_text(errors='replace')[-800:]}"
                       for n in ended)  # fmt: skip

    @staticmethod
    def _wait_for_port(port: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the Ray head did not open port {port} in {timeout:.0f} s")

    def remember(self) -> None:
        """Note every PID the cluster has now, so that the teardown finds even orphans."""
        for node in self.nodes.values():
            self.seen.update((p.pid, p) for p in node.processes())

    def remove(self, name: str) -> None:
        """Lose a node for good: SIGKILL its raylet (as a dead machine would), then the rest of it."""
        node = self.nodes.pop(name)
        processes = node.processes()
        self.seen.update((p.pid, p) for p in processes)
        for proc in processes:
            if _name(proc) == "raylet":
                _kill(proc)
        time.sleep(2)
        for proc in processes:
            _kill(proc)

    def stop(self) -> None:
        """Everything this cluster started, by PID (never `ray stop`: other Rays run here)."""
        self.remember()
        for node in list(self.nodes.values())[::-1]:
            _signal(node.proc.pid, signal.SIGTERM)
        time.sleep(3)
        for proc in self.seen.values():
            _kill(proc)
        for node in self.nodes.values():
            node.proc.wait(30)
        for temp_dir in self.temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)
        self.nodes.clear()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill(proc: psutil.Process) -> None:
    """SIGKILL, unless the process is gone (psutil checks that the PID was not reused)."""
    with contextlib.suppress(psutil.Error):
        proc.kill()


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""
