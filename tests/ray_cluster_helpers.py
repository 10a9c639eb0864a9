"""A multi-node Ray cluster on one machine: a head and worker nodes as separate `ray start --block`
processes, each in its own process group and temp dir, with free ports for every agent and custom
node resources; token auth on (the token in the environment of every process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.service_helpers import free_port

_AGENT_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port")  # fmt: skip


@dataclass
class Cluster:
    env: dict[str, str]
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def _start(self, name: str, args: list[str]) -> None:
        temp_dir = tempfile.mkdtemp(prefix=f"sr{name[:2]}", dir="/tmp")  # short: socket paths
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [ray, "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}", *args]
        cmd += [f"--{option}={free_port()}" for option in _AGENT_PORTS]
        log = Path(temp_dir) / "ray-start.log"
        self.nodes[name] = subprocess.Popen(cmd, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip

    def start_head(self) -> None:
        self._start("head", ["--head", f"--port={self.gcs_port}", "--num-cpus=0",
                             "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dashboard_port}",
                             f"--ray-client-server-port={free_port()}"])  # fmt: skip

    def start_worker(self, name: str, cpus: int) -> None:
        self._start(name, [f"--address={self.address}", f"--num-cpus={cpus}",
                           f"--resources={json.dumps({name: 1})}"])  # fmt: skip

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.nodes.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    def kill_raylet(self, name: str) -> int:
        """SIGKILL the node's raylet (a node lost mid-run); `ray start --block` then ends the
        node's other processes. Returns the raylet's pid."""
        import psutil

        proc = self.nodes.pop(name)
        pgid = os.getpgid(proc.pid)
        raylets = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet"
                   and _pgid(p.pid) == pgid]  # fmt: skip
        assert len(raylets) == 1, f"node {name}: raylets {raylets}"
        raylets[0].send_signal(signal.SIGKILL)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
        return raylets[0].pid

    def stop(self) -> None:
        for name in list(self.nodes)[::-1]:
            self.kill(name, signal.SIGTERM)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
