"""The job service under load: `slimray serve` (its own process, no Ray behind it) answering 32
concurrent clients on loopback, per endpoint: requests/s and p50/p99 latency of
`GET /v1/jobs/{id}`, `GET /v1/jobs` and `POST /v1/jobs`. Bounded: a fixed number of requests per
endpoint (10,000 at --size full: issue 23 asks for 0 errors in 10,000) and a time limit. Writes
results/service_load.{json,md,png}.

    .venv/bin/python benchmarks/bench_service_load.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import httpx
import yaml
from bench_service import free_port

TOKEN = "bench-load"
CLIENTS = 32
TIME_LIMIT = 300.0  # seconds per endpoint, whatever the count


def job_spec() -> dict:
    spec = yaml.safe_load((Path(__file__).parent.parent / "examples" / "mnist.yaml").read_text())
    spec.pop("output", None)
    return spec


async def hammer(url: str, method: str, path: str, body: dict | None, total: int) -> dict:
    """`total` requests from CLIENTS concurrent clients; latencies of the 2xx ones, errors counted."""
    latencies: list[float] = []
    failures: dict[str, int] = {}  # by exception name or status code
    errors = 0
    issued = 0
    deadline = time.perf_counter() + TIME_LIMIT
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal issued, errors
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                start = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body)
                except httpx.TransportError as err:  # a dropped connection is a failed request
                    failures[type(err).__name__] = failures.get(type(err).__name__, 0) + 1
                    errors += 1
                    continue
                if response.status_code < 300:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures[str(response.status_code)] = failures.get(str(response.status_code), 0) + 1
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        wall = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3 if latencies else None

    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "wall_seconds": wall,
        "requests_per_second": (len(latencies) + errors) / wall,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "failures": failures,
    }


def start_service(tmp: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SLIMRAY_API_TOKEN": TOKEN,
        "SLIMRAY_DB_PATH": f"{tmp}/jobs.db",
        "SLIMRAY_RUNS_ROOT": f"{tmp}/runs",
        "SLIMRAY_RAY_ADDRESS": f"http://127.0.0.1:{free_port()}",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("slimray")), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("slimray serve did not start within 60 s")


def one_repeat(total: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_service(tmp)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            created = httpx.post(f"{url}/v1/jobs", json=job_spec(), headers=headers, timeout=30)
            created.raise_for_status()
            job_id = created.json()["id"]
            return {
                "GET /v1/jobs/{id}": asyncio.run(hammer(url, "GET", f"/v1/jobs/{job_id}", None, total)),
                "GET /v1/jobs": asyncio.run(hammer(url, "GET", "/v1/jobs", None, total)),
                "POST /v1/jobs": asyncio.run(hammer(url, "POST", "/v1/jobs", job_spec(), total)),
            }
        finally:
            proc.terminate()
            proc.wait(15)


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    total = benchlib.pick(args.size, 64, 300, 10_000)
    repeats_n = args.repeats or benchlib.pick(args.size, 1, 1, 3)
    repeats = [one_repeat(total) for _ in range(repeats_n)]
    summary = {
        route: {
            key: benchlib.spread([r[route][key] for r in repeats])
            for key in ("requests_per_second", "p50_ms", "p99_ms", "errors")
        }
        for route in repeats[0]
    }
    rows = [
        (
            route,
            s["requests_per_second"]["median"],
            s["p50_ms"]["median"],
            s["p99_ms"]["median"],
            s["errors"]["median"],
        )
        for route, s in summary.items()
    ]
    table = benchlib.markdown_table(["endpoint", "requests/s", "p50 ms", "p99 ms", "errors"], rows)
    table += (
        f"\n{CLIENTS} concurrent clients on loopback, {total} requests per endpoint "
        f"(at most {TIME_LIMIT:.0f} s), {repeats_n} repeat(s), medians; no Ray behind the service.\n"
    )

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        names = list(summary)
        ax.bar(
            [n.replace(" /", "\n/") for n in names],
            [summary[n]["p99_ms"]["median"] or 0 for n in names],
            label="p99",
            color="tab:red",
        )
        ax.bar(
            [n.replace(" /", "\n/") for n in names],
            [summary[n]["p50_ms"]["median"] or 0 for n in names],
            label="p50",
        )
        ax.set_ylabel("latency (ms)")
        ax.legend()
        ax.set_title(f"slimray serve, {CLIENTS} concurrent clients")

    benchlib.write(
        "service_load",
        args.out,
        {"size": args.size, "clients": CLIENTS, "requests": total},
        repeats,
        summary,
        table,
        plot,
    )


if __name__ == "__main__":
    main()
