"""Job service start-up time and idle memory (goals: under 3 s, under 250 MB).

    .venv/bin/python benchmarks/bench_service.py [--runs 3]

Starts `slimray serve` (no Ray needed to be up), times process start to the first 200 from
/healthz, then reads the resident memory after it has idled and answered a few requests.
Writes benchmarks/results/service.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from slimray.service.ports import free_port

RESULTS = Path(__file__).parent / "results"


def one_run() -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SLIMRAY_API_TOKEN": "bench", "SLIMRAY_DB_PATH": f"{tmp}/jobs.db",
               "SLIMRAY_RAY_ADDRESS": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("slimray")), "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        startup = time.perf_counter() - start
        httpx.get(f"{url}/readyz", timeout=30)  # loads Ray's job submission client
        for _ in range(20):
            httpx.get(f"{url}/metrics")
            httpx.get(f"{url}/v1/jobs", headers={"Authorization": "Bearer bench"})
        time.sleep(2)
        rss = psutil.Process(proc.pid).memory_info().rss
        proc.terminate()
        proc.wait(10)
    return {"startup_seconds": round(startup, 3), "idle_rss_bytes": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    worst = {
        "startup_seconds": max(r["startup_seconds"] for r in runs),
        "idle_rss_mb": round(max(r["idle_rss_bytes"] for r in runs) / 2**20, 1),
    }
    print(f"start-up (worst of {args.runs}): {worst['startup_seconds']:.2f} s (goal < 3 s); "
          f"idle RSS: {worst['idle_rss_mb']:.0f} MB (goal < 250 MB)")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(
        {"command": "benchmarks/bench_service.py", "runs": runs, "worst": worst,
         "goals": {"startup_seconds": 3, "idle_rss_mb": 250}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
