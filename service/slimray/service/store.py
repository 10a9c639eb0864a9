"""The job store: SQLite in WAL mode; jobs, their state transitions and prune history survive
restarts. `transition` and `finish` are the only places a job's state changes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimray.core.jobstate import InvalidTransition, JobState, new_job_id
from slimray.core.jsonsafe import finite

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
    report TEXT,
    submitted_at REAL,
    stop_pending INTEGER NOT NULL DEFAULT 0,
    claimed TEXT,
    resubmits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_stop ON jobs(stop_pending);
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
    submitted_at: float | None = None  # when Ray accepted the driver
    stop_pending: bool = False  # cancelled here; Ray has not yet confirmed the stop
    resubmits: int = 0  # drivers lost and submitted again
    prune_events: list[dict[str, Any]] = field(default_factory=list)  # read only when asked for
    prune_event_count: int = 0
    transitions: list[dict[str, Any]] = field(default_factory=list)


class UnknownJob(KeyError):
    pass


class StoreUnavailable(RuntimeError):
    """The store cannot be written or read (disk full, file removed): the request is not done."""


_COLUMNS_ADDED = {"submitted_at": "REAL", "stop_pending": "INTEGER NOT NULL DEFAULT 0", "claimed": "TEXT",
                  "resubmits": "INTEGER NOT NULL DEFAULT 0"}  # fmt: skip


def _private_file(path: Path) -> None:
    """Create `path` readable by its owner only (or tighten an existing one) before SQLite opens it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


class Store:
    """Thread-safe access to the SQLite job store (files private to the service's user)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        _private_file(self.path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)

    def _migrate(self) -> None:
        """Stores written by earlier versions get the columns added since."""
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        for name, decl in _COLUMNS_ADDED.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _check_file(self) -> None:
        """Writes to a deleted or replaced file would vanish: refuse them instead."""
        try:
            stat = os.stat(self.path)
        except OSError as err:
            raise StoreUnavailable(f"the job store {self.path} is gone ({err.strerror})") from err
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise StoreUnavailable(f"the job store {self.path} was replaced while the service ran")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; SQLite's I/O errors become StoreUnavailable."""
        with self._lock:
            self._check_file()
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    yield self._db
            except (sqlite3.OperationalError, sqlite3.DatabaseError) as err:
                raise StoreUnavailable(f"the job store cannot be written: {err}") from err

    def ping(self) -> bool:
        with self._lock:
            self._check_file()
            return self._db.execute("SELECT 1").fetchone()[0] == 1

    # ---------------------------------------------------------------- writes
    def create(self, name: str, spec: dict[str, Any], job_id: str | None = None) -> Job:
        job_id = job_id or new_job_id()
        now = time.time()
        with self._writing() as db:
            db.execute(
                "INSERT INTO jobs (id, name, state, spec, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (job_id, name, JobState.QUEUED.value, json.dumps(spec), now, now),
            )
            db.execute(
                "INSERT INTO transitions VALUES (?, 0, NULL, ?, ?, 'submitted')",
                (job_id, JobState.QUEUED.value, now),
            )
        return self.get(job_id)

    def transition(self, job_id: str, to: JobState, reason: str = "", error: str | None = None) -> bool:
        """Change state if allowed. Same state: no-op (False). Not allowed: InvalidTransition."""
        with self._writing() as db:
            return self._transition(db, job_id, to, reason, error)

    def _transition(self, db, job_id: str, to: JobState, reason: str, error: str | None) -> bool:
        row = db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        current = JobState(row["state"])
        if current == to:
            return False
        if not current.can_become(to):
            raise InvalidTransition(f"job {job_id} is {current}; it cannot become {to}")
        now = time.time()
        seq = db.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE job_id=?", (job_id,)
        ).fetchone()[0]
        db.execute(
            "UPDATE jobs SET state=?, updated_at=?, error=COALESCE(?, error) WHERE id=?",
            (to.value, now, error, job_id),
        )
        db.execute("INSERT INTO transitions VALUES (?,?,?,?,?,?)",
                   (job_id, seq, current.value, to.value, now, reason))  # fmt: skip
        return True

    def finish(self, job_id: str, to: JobState, report: dict[str, Any] | None, reason: str,
               error: str | None = None) -> None:  # fmt: skip
        """Store the final report and the terminal state together, or neither (InvalidTransition)."""
        with self._writing() as db:
            if not self._transition(db, job_id, to, reason, error):
                raise InvalidTransition(f"job {job_id} is already {to}")
            if report is not None:
                db.execute("UPDATE jobs SET report=? WHERE id=?", (json.dumps(finite(report)), job_id))

    def cancel(self, job_id: str, reason: str) -> Job:
        """Cancelled here at once; a job Ray may be running is marked for the reconciler to stop."""
        with self._writing() as db:
            self._transition(db, job_id, JobState.CANCELLED, reason, None)
            db.execute("UPDATE jobs SET stop_pending=1 WHERE id=? AND ray_job_id IS NOT NULL", (job_id,))
        return self.get(job_id)

    def claim_submission(self, job_id: str, ray_job_id: str) -> bool:
        """Record the Ray submission id before submitting, only while the job is still queued:
        a cancel that got there first wins, and one that comes after finds the id to stop."""
        with self._writing() as db:
            cur = db.execute(
                "UPDATE jobs SET ray_job_id=?, updated_at=? WHERE id=? AND state=? AND submitted_at IS NULL",
                (ray_job_id, time.time(), job_id, JobState.QUEUED.value),
            )
            return cur.rowcount == 1

    def mark_submitted(self, job_id: str) -> None:
        with self._writing() as db:
            db.execute("UPDATE jobs SET submitted_at=COALESCE(submitted_at, ?), error=NULL WHERE id=?",
                       (time.time(), job_id))  # fmt: skip

    def spend_claim(self, job_id: str, ray_job_id: str) -> bool:
        """Mark the event-token claim of submission `ray_job_id` spent; False if it already was
        (or the job's submission is another one)."""
        with self._writing() as db:
            cur = db.execute("UPDATE jobs SET claimed=? WHERE id=? AND ray_job_id=? AND claimed IS NOT ?",
                             (ray_job_id, job_id, ray_job_id, ray_job_id))  # fmt: skip
            return cur.rowcount == 1

    def note(self, job_id: str, reason: str) -> None:
        """A line in the job's history (its transitions) that does not change its state."""
        with self._writing() as db:
            self._note(db, job_id, reason)

    def _note(self, db, job_id: str, reason: str) -> None:
        row = db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE job_id=?",
                         (job_id,)).fetchone()[0]  # fmt: skip
        db.execute("INSERT INTO transitions VALUES (?,?,?,?,?,?)",
                   (job_id, seq, row["state"], row["state"], time.time(), reason))  # fmt: skip

    def resubmit(self, job_id: str, lost: str, new: str, reason: str) -> bool:
        """Point an active job at a new Ray submission after its driver (submission `lost`) was
        lost, with `reason` in its history; False if the job moved on meanwhile."""
        with self._writing() as db:
            cur = db.execute(
                "UPDATE jobs SET ray_job_id=?, resubmits=resubmits+1, submitted_at=NULL, updated_at=? "
                "WHERE id=? AND ray_job_id=? AND state IN (?, ?)",
                (new, time.time(), job_id, lost, JobState.QUEUED.value, JobState.RUNNING.value),
            )
            if cur.rowcount == 1:
                self._note(db, job_id, reason)
            return cur.rowcount == 1

    def stop_confirmed(self, job_id: str) -> None:
        self._update(job_id, stop_pending=0)

    def set_error(self, job_id: str, error: str | None) -> None:
        self._update(job_id, error=error)

    def update_progress(self, job_id: str, progress: dict[str, Any], metrics: dict[str, Any]) -> None:
        self._update(job_id, progress=json.dumps(finite(progress)), metrics=json.dumps(finite(metrics)))

    def add_prune_event(self, job_id: str, step: int, event: dict[str, Any], limit: int) -> bool:
        """Insert or replace by step: a restarted worker group may report an event again. A new
        step when the job already has `limit` events is refused (False), nothing stored."""
        with self._writing() as db:
            self._require(job_id)
            known = db.execute("SELECT 1 FROM prune_events WHERE job_id=? AND step=?", (job_id, step))
            if known.fetchone() is None and self._event_count(job_id) >= limit:
                return False
            db.execute("INSERT OR REPLACE INTO prune_events VALUES (?,?,?)",
                       (job_id, step, json.dumps(finite(event))))  # fmt: skip
            return True

    def _event_count(self, job_id: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM prune_events WHERE job_id=?", (job_id,)).fetchone()[0]

    def _update(self, job_id: str, **columns: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in columns)
        with self._writing() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets}, updated_at=? WHERE id=?",
                (*columns.values(), time.time(), job_id),
            )
            if cur.rowcount == 0:
                raise UnknownJob(job_id)

    def _require(self, job_id: str) -> None:
        if self._db.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone() is None:
            raise UnknownJob(job_id)

    # ---------------------------------------------------------------- reads
    def _job(self, row: sqlite3.Row, detail: bool, events: bool | None = None) -> Job:
        """A stored job; `detail` adds its transitions, `events` (default: `detail`) its prune
        events' bodies: list pages carry only their count (issue 23 M3)."""
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
            submitted_at=row["submitted_at"],
            stop_pending=bool(row["stop_pending"]),
            resubmits=row["resubmits"],
        )
        job.prune_event_count = self._event_count(job.id)
        if detail if events is None else events:
            job.prune_events = [json.loads(r["event"]) for r in self._db.execute(
                "SELECT event FROM prune_events WHERE job_id=? ORDER BY step", (job.id,))]  # fmt: skip
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

    def pending_stops(self) -> list[Job]:
        """Cancelled jobs whose Ray driver has not been confirmed stopped."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE stop_pending=1 ORDER BY created_at").fetchall()
            return [self._job(r, detail=False) for r in rows]

    def recent(self, limit: int) -> list[Job]:
        """The `limit` newest jobs with their prune events (what /metrics exports)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs ORDER BY created_at DESC, id LIMIT ?", (limit,)
            ).fetchall()
            return [self._job(r, detail=False, events=True) for r in rows]

    def counts_by_state(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        counts = {state: 0 for state in JobState}
        counts.update({JobState(r["state"]): r["n"] for r in rows})
        return counts
