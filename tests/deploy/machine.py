"""Pods as Docker containers on one machine: the part of a kubelet (and of cluster DNS) the
deployment tests need, for the pods `tests/deploy/kuberay.py` plans from rendered manifests.

Taken from each pod as Kubernetes would: the image; command/args (`--entrypoint` and the
arguments); env (`value`; `valueFrom` secretKeyRef/configMapKeyRef/fieldRef; `envFrom`), Secrets
from the rendered manifests, else from the test; the securityContext (pod-level merged under the
container's: runAsUser/runAsGroup -> `--user uid:gid`, fsGroup -> `--group-add`,
readOnlyRootFilesystem -> `--read-only`, capabilities -> `--cap-drop`/`--cap-add`,
allowPrivilegeEscalation false -> `--security-opt no-new-privileges`, runAsNonRoot checked; seccomp
RuntimeDefault is Docker's default profile); volumes (emptyDir -> `--tmpfs` (exec, mode 1777, its
sizeLimit), the Ray pods' /dev/shm -> `--shm-size` of the memory limit, a persistentVolumeClaim ->
one host folder per claim name shared by every pod that mounts it (group and setgid as
`fsGroup` would make them, g+rwx), ConfigMaps, Secrets and projected volumes of them -> their
data as files with their modes, mounted read-only); resources (the CPU limit -> `--cpus`, at most
the machine's cores; the memory limit -> `--memory`); readiness probes (httpGet, exec) before a
pod counts as started.

Adaptations for one machine, host network, loopback only (each generic, none names a manifest):
- Every Service the manifests or the operator define resolves to 127.0.0.1 (`--add-host` for
  `<name>`, `<name>.<ns>`, `<name>.<ns>.svc`, `<name>.<ns>.svc.cluster.local`).
- Every pod gets its own free port for each port it declares and for Ray's well-known ports
  (6379 GCS, 8265 dashboard, 10001 client, 8080 metrics, 52365 agent, 8000) and the agent ports
  tests/ray_cluster_helpers.py frees (dashboard-agent-grpc-port, runtime-env-agent-port).
  `<host>:<port>` of a Service, or of 127.0.0.1/localhost/0.0.0.0 in the pod itself, is rewritten
  to that free port wherever it appears: env values (Secrets' too), ConfigMap data, arguments;
  so are bare `--port N` arguments and Ray's port flags (`--port` etc. on the head, which
  KubeRay leaves at their defaults).
- Servers bind loopback: an argument `0.0.0.0` (`--host 0.0.0.0`, `--dashboard-host=0.0.0.0`)
  becomes 127.0.0.1.
- The Ray head gets `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`: Ray then takes 127.0.0.1 as its node IP
  instead of the host's outward address (workers reach it through 127.0.0.1 and take it too);
  `nodes()` checks every node's IP. `RAY_PORT` follows the head's GCS port.
- The autoscaler sidecar is left out (no API server to scale through); no restarts.
- The operator's part: a RayCluster in token mode whose authOptions name no Secret gets one named
  after it (`auth_token`, random), as KubeRay generates it; a named Secret must exist.
- Not adapted, and visible in the Ray pods' logs here: KubeRay's `ulimit -n 65536` fails when the
  Docker daemon's own open-files limit is lower (20000 on the test machine; Docker refuses to
  raise it), and bash goes on to `ray start` as it would on such a node.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.kuberay import (
    AGENT_PORT,
    CLIENT_PORT,
    CLUSTER_DOMAIN,
    DASHBOARD_PORT,
    GCS_PORT,
    METRICS_PORT,
    SERVE_PORT,
    PodPlan,
    RayClusterPlan,
    RayJobPlan,
    ServicePlan,
    Workload,
    quantity,
    quantity_value,
)
from tests.service_helpers import free_port

DOCKER = "/usr/bin/docker"  # the daemon's own client (Debian's 20.10)
PREFIX = f"slimray-test-{os.getpid()}"
LOOPBACK, ANY_HOST = "127.0.0.1", "0.0.0.0"
RAY_WELL_KNOWN = (GCS_PORT, DASHBOARD_PORT, CLIENT_PORT, METRICS_PORT, AGENT_PORT, SERVE_PORT)
HEAD_PORT_FLAGS = {"port": GCS_PORT, "dashboard-port": DASHBOARD_PORT, "ray-client-server-port": CLIENT_PORT}
NODE_PORT_FLAGS = {"metrics-export-port": METRICS_PORT, "dashboard-agent-listen-port": AGENT_PORT}
FREE_PORT_FLAGS = ("dashboard-agent-grpc-port", "runtime-env-agent-port")
ADDRESS = re.compile(
    r"(?<![\w.-])(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>\d{1,5})(?!\d)"
)


def docker(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=env)


@dataclass
class Started:
    """A pod's container: its name and the `docker run` that started it."""

    pod: PodPlan
    name: str
    argv: list[str]


class PodFailed(AssertionError):
    """A pod did not start, did not become ready, or its job failed; the message holds the logs."""


class Machine:
    """Runs a Workload's pods as containers; remove them all with `stop()` (or use `machine()`)."""

    def __init__(self, workload: Workload, workdir: Path):
        self.work, self.workdir = workload, workdir
        self.ns = workload.manifests.namespace
        self._ports: dict[str, dict[int | str, int]] = {}
        self.started: dict[str, Started] = {}
        self.routes = {h: s for s in workload.services for h in self._names(s.name)}
        for cluster in workload.clusters:  # the operator generates a token Secret unless one is named
            if cluster.token_generated and not self._has_secret(cluster.token_secret):
                workload.manifests.given_secrets[cluster.token_secret] = {"auth_token": secrets.token_hex(32)}
        for pod in workload.all_pods:
            if pod.ray is not None:
                self._adapt_ray(pod)

    # ---- names and ports
    def _names(self, service: str) -> list[str]:
        return [
            service,
            f"{service}.{self.ns}",
            f"{service}.{self.ns}.svc",
            f"{service}.{self.ns}.svc.{CLUSTER_DOMAIN}",
        ]

    def _has_secret(self, name: str) -> bool:
        try:
            self.work.manifests.secret(name)
            return True
        except KeyError:
            return False

    def host_port(self, pod: PodPlan, port: int | str) -> int:
        """The free port standing in for a pod's port (a number, or a named Ray flag)."""
        ports = self._ports.setdefault(pod.name, {})
        if port not in ports:
            ports[port] = free_port()
        return ports[port]

    def _known_ports(self, pod: PodPlan) -> set[int]:
        declared = {p["containerPort"] for p in pod.container.get("ports") or []}
        return declared | (set(RAY_WELL_KNOWN) if pod.ray else set())

    def _target(self, host: str, port: int, pod: PodPlan) -> tuple[PodPlan, int] | None:
        """Where `host:port`, seen from `pod`, leads: (pod, its container port), or None."""
        if host in (LOOPBACK, "localhost", ANY_HOST):
            return (pod, port) if port in self._known_ports(pod) else None
        service: ServicePlan | None = self.routes.get(host)
        if service is None:
            return None
        target = service.target(port)
        if target is None or (service.identity and target not in self._known_ports(service.pod)):
            return None
        return service.pod, target

    def rewrite(self, text: str, pod: PodPlan) -> str:
        """`<host>:<port>` of a Service or of the pod itself -> the same host with its free port."""

        def swap(m: re.Match) -> str:
            target = self._target(m["host"], int(m["port"]), pod)
            if target is None:
                return m[0]
            host = LOOPBACK if m["host"] == ANY_HOST else m["host"]
            return f"{host}:{self.host_port(*target)}"

        return ADDRESS.sub(swap, text)

    def _adapt_ray(self, pod: PodPlan) -> None:
        """A Ray pod's rayStartParams on free ports and loopback (module docstring)."""
        params = pod.ray.params
        flags = {**(HEAD_PORT_FLAGS if pod.ray.head else {}), **NODE_PORT_FLAGS}
        for flag, default in flags.items():
            params[flag] = str(self.host_port(pod, int(params.get(flag, default))))
        for flag in FREE_PORT_FLAGS:
            params[flag] = str(self.host_port(pod, flag))
        for flag, value in params.items():
            params[flag] = LOOPBACK if value == ANY_HOST else self.rewrite(value, pod)

    def _args(self, args: list[str], pod: PodPlan) -> list[str]:
        """Arguments with loopback binds, free ports for `--port N` and rewritten addresses."""
        out: list[str] = []
        for arg in args:
            flag, eq, value = arg.partition("=")
            if arg == ANY_HOST or (eq and value == ANY_HOST):
                arg = f"{flag}={LOOPBACK}" if eq else LOOPBACK
            elif arg.isdigit() and out and out[-1].endswith("port") and int(arg) in self._known_ports(pod):
                arg = str(self.host_port(pod, int(arg)))
            elif eq and flag.endswith("port") and value.isdigit() and int(value) in self._known_ports(pod):
                arg = f"{flag}={self.host_port(pod, int(value))}"
            out.append(self.rewrite(arg, pod))
        return out

    # ---- env
    def env(self, pod: PodPlan) -> dict[str, str]:
        """The container's environment, resolved as the kubelet would, then adapted."""
        c = pod.container
        env: dict[str, str] = {}
        for source in c.get("envFrom") or []:
            if "secretRef" in source or "configMapRef" in source:
                ref = source.get("secretRef") or source["configMapRef"]
                data = self._lookup(ref, "secretRef" in source)
                env.update({f"{source.get('prefix', '')}{k}": v for k, v in (data or {}).items()})
        for var in pod.env():
            value = var["value"] if "value" in var else self._value_from(var["valueFrom"], pod)
            if value is not None:
                env[var["name"]] = value
        env = {k: self.rewrite(v, pod) for k, v in env.items()}
        if pod.ray is not None:
            cluster = self.work.cluster(pod.cluster)
            env["RAY_PORT"] = str(self.host_port(cluster.head, int(env["RAY_PORT"])))
            if pod.ray.head:
                env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return env

    def _lookup(self, ref: dict[str, Any], secret: bool) -> dict[str, str] | None:
        try:
            return (
                self.work.manifests.secret(ref["name"])
                if secret
                else self.work.manifests.config_map(ref["name"])
            )
        except (KeyError, AssertionError):
            if ref.get("optional"):
                return None
            raise

    def _value_from(self, source: dict[str, Any], pod: PodPlan) -> str | None:
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            ref = source.get("secretKeyRef") or source["configMapKeyRef"]
            data = self._lookup(ref, "secretKeyRef" in source)
            if data is None or (ref["key"] not in data and ref.get("optional")):
                return None
            return data[ref["key"]]
        path = source["fieldRef"]["fieldPath"]
        fields = {
            "metadata.name": pod.name,
            "metadata.namespace": self.ns,
            "status.podIP": LOOPBACK,
            "status.hostIP": LOOPBACK,
            "spec.nodeName": "localhost",
        }
        label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        return pod.labels.get(label[1], "") if label else fields[path]

    # ---- docker run
    def _security(self, pod: PodPlan) -> list[str]:
        psc, sc = pod.spec.get("securityContext") or {}, pod.container.get("securityContext") or {}
        merged = {**psc, **sc}
        flags = []
        if "runAsUser" in merged:
            flags += ["--user", f"{merged['runAsUser']}:{merged.get('runAsGroup', 0)}"]
            assert not (merged.get("runAsNonRoot") and merged["runAsUser"] == 0), (
                f"{pod.name}: runAsNonRoot with UID 0"
            )
        if "fsGroup" in psc:
            flags += ["--group-add", str(psc["fsGroup"])]
        for group in psc.get("supplementalGroups") or []:
            flags += ["--group-add", str(group)]
        if merged.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        for cap in (merged.get("capabilities") or {}).get("drop") or []:
            flags += ["--cap-drop", cap]
        for cap in (merged.get("capabilities") or {}).get("add") or []:
            flags += ["--cap-add", cap]
        if merged.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        if merged.get("privileged"):
            flags.append("--privileged")
        return flags

    def _resources(self, pod: PodPlan) -> list[str]:
        limits = (pod.container.get("resources") or {}).get("limits") or {}
        flags = []
        if "cpu" in limits:
            flags += ["--cpus", f"{min(float(quantity(limits['cpu'])), os.cpu_count() or 1):g}"]
        if "memory" in limits:
            flags += ["--memory", str(quantity_value(limits["memory"]))]
        return flags

    def claim_dir(self, claim: str, fs_group: int | None) -> Path:
        """The host folder standing in for a PersistentVolumeClaim (the same for every pod)."""
        path = self.workdir / "claims" / claim
        if not path.exists():
            path.mkdir(parents=True)
            if fs_group is not None and os.geteuid() == 0:
                os.chown(path, -1, fs_group)
                path.chmod(0o2775)  # fsGroup: the group owns the volume, g+rwx, setgid
            else:
                path.chmod(0o777)
        return path

    def _files(self, pod: PodPlan, volume: dict[str, Any]) -> Path:
        """A ConfigMap, Secret or projected volume's files (rewritten like env values), in a folder
        of the pod; a missing Secret or key fails the pod unless its source is `optional`."""
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            sources = [({**s.get("configMap", s.get("secret")), "defaultMode": mode}, "secret" in s)
                       for s in volume["projected"]["sources"]]  # fmt: skip
        elif "configMap" in volume:
            sources = [(volume["configMap"], False)]
        else:
            sources = [({**volume["secret"], "name": volume["secret"]["secretName"]}, True)]
        folder = self.workdir / "volumes" / pod.name / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for source, secret in sources:
            data = self._lookup(source, secret) or {}
            for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                if item["key"] not in data:
                    assert source.get("optional"), f"{pod.name}: {source['name']} has no key {item['key']}"
                    continue
                path = folder / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.rewrite(data[item["key"]], pod))
                path.chmod(item.get("mode", source.get("defaultMode", 0o644)))
        return folder

    def _volumes(self, pod: PodPlan) -> list[str]:
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        fs_group = (pod.spec.get("securityContext") or {}).get("fsGroup")
        flags: list[str] = []
        for mount in pod.container.get("volumeMounts") or []:
            volume, path = volumes[mount["name"]], mount["mountPath"]
            if "emptyDir" in volume and path == "/dev/shm":
                limit = ((pod.container.get("resources") or {}).get("limits") or {}).get("memory")
                flags += ["--shm-size", str(quantity_value(limit))] if limit else []
            elif "emptyDir" in volume:
                size = volume["emptyDir"].get("sizeLimit")
                flags += [
                    "--tmpfs",
                    f"{path}:rw,exec,mode=1777" + (f",size={quantity_value(size)}" if size else ""),
                ]
            else:
                if "persistentVolumeClaim" in volume:
                    host = self.claim_dir(volume["persistentVolumeClaim"]["claimName"], fs_group)
                    read_only = mount.get("readOnly") or volume["persistentVolumeClaim"].get("readOnly")
                elif {"configMap", "secret", "projected"} & set(volume):
                    host, read_only = self._files(pod, volume), True
                else:
                    raise NotImplementedError(
                        f"{pod.name}: volume {volume['name']} of kind {set(volume) - {'name'}}"
                    )
                host = host / mount["subPath"] if mount.get("subPath") else host
                flags += ["-v", f"{host}:{path}" + (":ro" if read_only else "")]
        return flags

    def docker_run(self, pod: PodPlan) -> tuple[list[str], dict[str, str]]:
        """The `docker run` arguments for a pod's container, and the env they pass by name."""
        c, name = pod.container, f"{PREFIX}-{pod.name}"
        env = self.env(pod)
        hosts = [h for s in self.work.services for h in self._names(s.name)]
        argv = ["run", "-d", "--name", name, "--label", f"slimray-test={os.getpid()}", "--network", "host"]
        argv += [a for h in hosts for a in ("--add-host", f"{h}:{LOOPBACK}")]
        argv += self._security(pod) + self._resources(pod) + self._volumes(pod)
        argv += [a for k in env for a in ("-e", k)]  # values through the client's env: off the command line
        if c.get("workingDir"):
            argv += ["-w", c["workingDir"]]
        command, args = pod.command()
        if command:
            argv += ["--entrypoint", command[0], c["image"], *self._args(command[1:], pod)]
        else:
            argv.append(c["image"])
        argv += self._args(args, pod)
        return argv, env

    # ---- lifecycle
    def start(self, pod: PodPlan) -> Started:
        argv, env = self.docker_run(pod)
        proc = docker(*argv, env={**os.environ, **env})
        started = Started(pod, argv[3], argv)
        self.started[pod.name] = started
        if proc.returncode != 0:
            raise PodFailed(f"docker run of {pod.name} failed: {proc.stderr}\n{' '.join(argv)}")
        return started

    def running(self, pod: PodPlan) -> bool:
        proc = docker("inspect", "-f", "{{.State.Running}}", self.started[pod.name].name)
        return proc.stdout.strip() == "true"

    def ready(self, pod: PodPlan) -> bool:
        """The container's readiness probe passes (no probe: it runs)."""
        probe = pod.container.get("readinessProbe") or {}
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.host_port(pod, pod.container_port(get["port"]))
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            with contextlib.suppress(httpx.HTTPError):
                url = f"{get.get('scheme', 'HTTP').lower()}://{LOOPBACK}:{port}{get.get('path', '/')}"
                return 200 <= httpx.get(url, headers=headers, timeout=3).status_code < 400
            return False
        if "exec" in probe:
            return (
                docker("exec", self.started[pod.name].name, *probe["exec"]["command"], timeout=30).returncode
                == 0
            )
        return self.running(pod)

    def exec(self, pod: PodPlan, *argv: str, timeout: float = 60) -> str:
        """`kubectl exec <pod> -- argv`: its stdout (PodFailed if it fails)."""
        proc = docker("exec", self.started[pod.name].name, *argv, timeout=timeout)
        if proc.returncode != 0:
            raise PodFailed(f"exec {' '.join(argv)} in {pod.name}: {proc.stderr}")
        return proc.stdout

    def wait_ready(self, pod: PodPlan, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while not self.ready(pod):
            if not self.running(pod):
                raise PodFailed(f"{pod.name} exited before it was ready\n{self.logs()}")
            if time.time() > deadline:
                raise PodFailed(f"{pod.name} not ready after {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.5)

    def wait_exit(self, pod: PodPlan, timeout: float) -> int:
        """The container's exit code once it ends (PodFailed at the timeout)."""
        try:
            proc = docker("wait", self.started[pod.name].name, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PodFailed(f"{pod.name} still running after {timeout:.0f} s\n{self.logs()}") from None
        return int(proc.stdout.strip())

    def logs(self, tail: int = 150) -> str:
        """Every started container's last lines, for failure messages."""
        parts = []
        for started in self.started.values():
            proc = subprocess.run(
                [DOCKER, "logs", "--tail", str(tail), started.name], capture_output=True, text=True
            )
            parts.append(f"===== docker logs {started.name}\n{proc.stdout}{proc.stderr}")
        return "\n".join(parts)

    def host_path(self, pod: PodPlan, path: str) -> Path:
        """Where a path on a pod's claim volume is on this machine."""
        volume, inner = mounted(pod, path)
        assert "persistentVolumeClaim" in volume, f"{path} in {pod.name} is not on a claim: {volume}"
        return self.workdir / "claims" / volume["persistentVolumeClaim"]["claimName"] / inner

    def file_text(self, pod: PodPlan, path: str) -> str:
        """A file a ConfigMap or Secret volume puts at `path` in a pod, as the pod reads it."""
        volume, inner = mounted(pod, path)
        return (self._files(pod, volume) / inner).read_text()

    def stop(self) -> None:
        names = [s.name for s in self.started.values()]
        if names:
            docker("rm", "-f", *names)

    # ---- Ray
    def dashboard(self, cluster: RayClusterPlan) -> str:
        return f"http://{LOOPBACK}:{self.host_port(cluster.head, DASHBOARD_PORT)}"

    def ray_token(self, cluster: RayClusterPlan) -> str | None:
        return (
            self.work.manifests.secret(cluster.token_secret)["auth_token"] if cluster.token_secret else None
        )

    def ray_get(self, cluster: RayClusterPlan, path: str, **params: Any) -> httpx.Response:
        """A GET on the cluster's dashboard, with its token as KubeRay's clients send it."""
        token = self.ray_token(cluster)
        headers = {"x-ray-authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.dashboard(cluster)}{path}", headers=headers, params=params, timeout=10)

    def nodes(self, cluster: RayClusterPlan) -> list[dict[str, Any]]:
        """Alive nodes; each must have taken 127.0.0.1 as its IP (nothing else may be contacted)."""
        rows = self.ray_get(cluster, "/api/v0/nodes", limit=100).json()["data"]["result"]["result"]
        alive = [r for r in rows if r.get("state") == "ALIVE"]
        assert {r["node_ip"] for r in alive} <= {LOOPBACK}, f"a node took another IP: {alive}"
        return alive

    def start_cluster(self, cluster: RayClusterPlan, timeout: float = 180) -> None:
        """Head, then workers, each ready; then every node alive in the head's view."""
        self.start(cluster.head)
        self.wait_ready(cluster.head, timeout)
        for worker in cluster.workers:
            self.start(worker)
        for worker in cluster.workers:
            self.wait_ready(worker, timeout)
        deadline = time.time() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                if len(self.nodes(cluster)) >= len(cluster.pods):
                    return
            if time.time() > deadline:
                raise PodFailed(f"{cluster.name}: not every node joined\n{self.logs()}")
            time.sleep(1)

    def job_status(self, cluster: RayClusterPlan, submission_id: str) -> dict[str, Any]:
        """The dashboard's record of a job (its `status`, `message`, ...)."""
        response = self.ray_get(cluster, f"/api/jobs/{submission_id}")
        assert response.status_code == 200, f"job {submission_id}: {response.status_code} {response.text}"
        return response.json()

    def run_ray_job(self, job: RayJobPlan, timeout: float) -> tuple[int, dict[str, Any]]:
        """As KubeRay: the cluster, ready; then the submitter to its end. (exit code, job record)."""
        self.start_cluster(job.cluster)
        self.start(job.submitter)
        code = self.wait_exit(job.submitter, timeout)
        return code, self.job_status(job.cluster, job.submission_id)


@contextlib.contextmanager
def machine(workload: Workload, workdir: Path) -> Iterator[Machine]:
    """A Machine whose containers are removed on the way out, whatever happened."""
    m = Machine(workload, workdir)
    try:
        yield m
    finally:
        m.stop()


def remove_tree(path: Path) -> None:
    """Remove what containers (other UIDs) wrote under a test folder."""
    shutil.rmtree(path, ignore_errors=True)


def mounted(pod: PodPlan, path: str) -> tuple[dict[str, Any], str]:
    """The volume a pod's container mounts at (or above) `path`, and the path inside it."""
    mounts = sorted(pod.container.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        root = mount["mountPath"].rstrip("/")
        if path == root or path.startswith(root + "/"):
            volume = next(v for v in pod.spec["volumes"] if v["name"] == mount["name"])
            return volume, path[len(root) :].lstrip("/")
    raise AssertionError(f"{pod.name} mounts nothing at {path}")
