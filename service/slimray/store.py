"""The job store: SQLite in WAL mode; jobs, their state transitions and prune history survive
restarts. `transition` is the one place a job's state changes."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimray.jobstate import InvalidTransition, JobState
from slimray.jsonsafe import finite

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ray_job_id TEXT,
    error TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    report TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS transitions (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS prune_events (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    step INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (job_id, step)
);
"""


@dataclass
class Job:
    id: str
    name: str
    state: JobState
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    ray_job_id: str | None = None
    error: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    prune_events: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)


class UnknownJob(KeyError):
    pass


class Store:
    """Thread-safe access to the SQLite job store."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ping(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1").fetchone()[0] == 1

    # ---------------------------------------------------------------- writes
    def create(self, name: str, spec: dict[str, Any], job_id: str | None = None) -> Job:
        job_id = job_id or uuid.uuid4().hex[:12]
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO jobs (id, name, state, spec, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (job_id, name, JobState.QUEUED.value, json.dumps(spec), now, now),
            )
            self._db.execute(
                "INSERT INTO transitions VALUES (?, 0, NULL, ?, ?, 'submitted')",
                (job_id, JobState.QUEUED.value, now),
            )
        return self.get(job_id)

    def update_spec(self, job_id: str, spec: dict[str, Any]) -> None:
        self._update(job_id, spec=json.dumps(spec))

    def transition(self, job_id: str, to: JobState, reason: str = "", error: str | None = None) -> bool:
        """Change state if allowed. Same state: no-op (False). Not allowed: InvalidTransition."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            current = JobState(row["state"])
            if current == to:
                return False
            if not current.can_become(to):
                raise InvalidTransition(f"job {job_id} is {current}; it cannot become {to}")
            seq = self._db.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE job_id=?", (job_id,)
            ).fetchone()[0]
            self._db.execute(
                "UPDATE jobs SET state=?, updated_at=?, error=COALESCE(?, error) WHERE id=?",
                (to.value, now, error, job_id),
            )
            self._db.execute(
                "INSERT INTO transitions VALUES (?,?,?,?,?,?)",
                (job_id, seq, current.value, to.value, now, reason),
            )
        return True

    def set_ray_job(self, job_id: str, ray_job_id: str) -> None:
        self._update(job_id, ray_job_id=ray_job_id)

    def set_error(self, job_id: str, error: str | None) -> None:
        self._update(job_id, error=error)

    def update_progress(self, job_id: str, progress: dict[str, Any], metrics: dict[str, Any]) -> None:
        self._update(job_id, progress=json.dumps(finite(progress)), metrics=json.dumps(finite(metrics)))

    def set_report(self, job_id: str, report: dict[str, Any]) -> None:
        self._update(job_id, report=json.dumps(finite(report)))

    def add_prune_event(self, job_id: str, event: dict[str, Any]) -> None:
        """Insert or replace by step: a restarted worker group may report an event again."""
        with self._lock, self._db:
            self._require(job_id)
            self._db.execute(
                "INSERT OR REPLACE INTO prune_events VALUES (?,?,?)",
                (job_id, int(event["step"]), json.dumps(finite(event))),
            )

    def _update(self, job_id: str, **columns: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in columns)
        with self._lock, self._db:
            cur = self._db.execute(
                f"UPDATE jobs SET {sets}, updated_at=? WHERE id=?",
                (*columns.values(), time.time(), job_id),
            )
            if cur.rowcount == 0:
                raise UnknownJob(job_id)

    def _require(self, job_id: str) -> None:
        if self._db.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone() is None:
            raise UnknownJob(job_id)

    # ---------------------------------------------------------------- reads
    def _job(self, row: sqlite3.Row, detail: bool) -> Job:
        job = Job(
            id=row["id"],
            name=row["name"],
            state=JobState(row["state"]),
            spec=json.loads(row["spec"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            ray_job_id=row["ray_job_id"],
            error=row["error"],
            progress=json.loads(row["progress"]),
            metrics=json.loads(row["metrics"]),
            report=json.loads(row["report"]) if row["report"] else None,
        )
        job.prune_events = [
            json.loads(r["event"])
            for r in self._db.execute(
                "SELECT event FROM prune_events WHERE job_id=? ORDER BY step", (job.id,)
            )
        ]
        if detail:
            job.transitions = [
                dict(r)
                for r in self._db.execute(
                    "SELECT from_state, to_state, at, reason FROM transitions WHERE job_id=? ORDER BY seq",
                    (job.id,),
                )
            ]
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJob(job_id)
            return self._job(row, detail=True)

    def list(self, state: JobState | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
        where, args = ("WHERE state=?", (state.value,)) if state else ("", ())
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return [self._job(r, detail=False) for r in rows], total

    def active(self) -> list[Job]:
        """Jobs not yet in a terminal state, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at",
                (JobState.QUEUED.value, JobState.RUNNING.value),
            ).fetchall()
            return [self._job(r, detail=False) for r in rows]

    def recent(self, limit: int) -> list[Job]:
        return self.list(limit=limit)[0]

    def counts_by_state(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        counts = {state: 0 for state in JobState}
        counts.update({JobState(r["state"]): r["n"] for r in rows})
        return counts
