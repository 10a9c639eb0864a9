"""The Ray head `slimray serve --local` starts: token authentication on (its own token, kept
private in the state dir), dashboard on loopback, the service's secrets kept out of its
environment, and stopped with the service (it runs as a child process group)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from slimray.core.envvars import SECRETS_DIR, SERVICE_SECRETS
from slimray.service.ports import free_ports

RECORD = "ray_head.json"  # in the state dir: the head a service started, for its successor

# never inherited by Ray (and so by job drivers): the service's own credentials
SECRET_ENV = (*SERVICE_SECRETS, SECRETS_DIR)
_AGENT_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port", "ray-client-server-port")  # fmt: skip


class LocalRayError(RuntimeError):
    """The local Ray head did not start; the message carries the end of its output."""


def private_secret(path: Path) -> str:
    """Read the secret at `path`, creating it first (mode 0600 from the start) if absent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


def _ray_command() -> str:
    """The `ray` script of this interpreter's Ray: beside it (a venv), else on PATH (a system
    Python whose scripts go to /usr/local/bin while it lives in /usr/bin)."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else shutil.which("ray") or str(beside)


def answers(address: str, token: str | None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(f"{address}/api/version", timeout=2.0, headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class LocalRay:
    """A Ray head a service started (`ray start --head --block` in its own process group).
    A restarted service adopts the head its predecessor recorded, so one of them stops it."""

    address: str
    token: str
    pgid: int
    log: Path
    process: subprocess.Popen | None = None

    def record(self, state_dir: Path) -> None:
        (state_dir / RECORD).write_text(json.dumps({"address": self.address, "pgid": self.pgid,
                                                     "log": str(self.log)}))  # fmt: skip

    @classmethod
    def adopt(cls, state_dir: Path, address: str, token: str) -> LocalRay | None:
        """The head recorded in `state_dir` if it is the one answering at `address`."""
        try:
            record = json.loads((state_dir / RECORD).read_text())
            os.killpg(int(record["pgid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.get("address") != address:
            return None
        return cls(address, token, int(record["pgid"]), Path(record["log"]))

    @classmethod
    def start(cls, address: str, token: str, num_cpus: int | None, gcs_port: int,
              timeout: float = 120.0, system_config: dict | None = None) -> LocalRay:  # fmt: skip
        url = urlparse(address)
        temp_dir = Path(tempfile.mkdtemp(prefix="slimray-ray-"))  # short: Ray's socket paths
        log = temp_dir / "ray-start.log"
        cmd = [_ray_command(), "start", "--head", "--block",
               "--disable-usage-stats", "--include-dashboard=true", f"--temp-dir={temp_dir}",
               f"--dashboard-host={url.hostname}", f"--dashboard-port={url.port or 8265}",
               f"--port={gcs_port}"]  # fmt: skip
        agent_ports = free_ports(len(_AGENT_PORTS), exclude={gcs_port, url.port or 8265})
        cmd += [f"--{option}={port}" for option, port in zip(_AGENT_PORTS, agent_ports, strict=True)]
        if num_cpus:
            cmd.append(f"--num-cpus={num_cpus}")
        if system_config:
            cmd.append(f"--system-config={json.dumps(system_config)}")
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        process = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        head = cls(address, token, process.pid, log, process)
        head._wait(timeout)
        return head

    def _wait(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LocalRayError(f"`ray start` exited {self.process.returncode}: {self._tail()}")
            if answers(self.address, self.token):
                return
            time.sleep(0.5)
        self.stop()
        raise LocalRayError(f"Ray's job server did not answer at {self.address} in {timeout:.0f} s: "
                            f"{self._tail()}")  # fmt: skip

    def _tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False
        try:
            os.killpg(self.pgid, 0)
            return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0, state_dir: Path | None = None) -> None:
        """SIGTERM the head's process group (GCS, raylet, dashboard, workers), then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, sig)
            deadline = time.time() + timeout
            while self._alive() and time.time() < deadline:
                time.sleep(0.2)
            if not self._alive():
                break
        self._end_stragglers(timeout)
        if state_dir is not None:
            (state_dir / RECORD).unlink(missing_ok=True)

    def _end_stragglers(self, timeout: float) -> None:
        """End this head's processes outside its process group (Ray's idle worker processes, kept
        warm, outlive their raylet for a while): those whose command line names its temp dir."""
        import psutil  # lazy: only stopping a head needs it

        marker = str(self.log.parent)
        left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=timeout)
