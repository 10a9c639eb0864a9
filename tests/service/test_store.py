"""The SQLite job store: one place changes state, and everything survives a reopen."""

from __future__ import annotations

import math

import pytest

from slimray.core.jobstate import InvalidTransition, JobState
from slimray.service.store import Store, UnknownJob


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "jobs.db")
    yield s
    s.close()


def test_jobs_start_queued_and_follow_allowed_transitions(store):
    job = store.create("a", {"name": "a"})
    assert job.state == JobState.QUEUED and job.transitions[0]["to_state"] == "queued"
    assert store.transition(job.id, JobState.RUNNING, "driver start")
    assert not store.transition(job.id, JobState.RUNNING)  # same state: no-op
    assert store.transition(job.id, JobState.SUCCEEDED, "done")
    with pytest.raises(InvalidTransition, match="succeeded; it cannot become running"):
        store.transition(job.id, JobState.RUNNING)
    states = [t["to_state"] for t in store.get(job.id).transitions]
    assert states == ["queued", "running", "succeeded"]


def test_terminal_states_are_exactly_three():
    assert {s for s in JobState if s.is_terminal} == {
        JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}  # fmt: skip
    assert all(not s.can_become(t) for s in JobState if s.is_terminal for t in JobState)


def test_everything_survives_a_reopen(tmp_path):
    path = tmp_path / "jobs.db"
    first = Store(path)
    job = first.create("a", {"x": 1})
    first.transition(job.id, JobState.RUNNING)
    first.update_progress(job.id, {"step": 5}, {"samples_per_second": 10.0, "loss": math.nan})
    first.add_prune_event(job.id, 3, {"step": 3, "durations": {"score": 0.1}}, limit=1)
    first.add_prune_event(job.id, 3, {"step": 3, "durations": {"score": 0.2}}, limit=1)  # replayed
    first.close()
    again = Store(path)
    got = again.get(job.id)
    assert got.state == JobState.RUNNING and got.spec == {"x": 1}
    assert got.progress == {"step": 5} and got.metrics == {"samples_per_second": 10.0, "loss": None}
    assert got.prune_events == [{"step": 3, "durations": {"score": 0.2}}]
    assert [t["to_state"] for t in got.transitions] == ["queued", "running"]
    assert again._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_listing_filters_and_pages(store):
    ids = [store.create(f"j{i}", {}).id for i in range(5)]
    store.transition(ids[0], JobState.CANCELLED)
    jobs, total = store.list(limit=2, offset=0)
    assert total == 5 and len(jobs) == 2
    cancelled, n = store.list(JobState.CANCELLED)
    assert n == 1 and cancelled[0].id == ids[0]
    assert store.counts_by_state()[JobState.QUEUED] == 4
    assert {j.id for j in store.active()} == set(ids[1:])


def test_unknown_jobs(store):
    with pytest.raises(UnknownJob):
        store.get("nope")
    with pytest.raises(UnknownJob):
        store.transition("nope", JobState.RUNNING)
    with pytest.raises(UnknownJob):
        store.add_prune_event("nope", 1, {"step": 1}, limit=1)


def test_the_store_and_its_journal_are_private_to_the_service_user(tmp_path):
    """Regression: the store, its WAL and its directory were world-readable."""
    import stat

    store = Store(tmp_path / "state" / "jobs.db")
    store.create("j", {"secret": "x"})
    for path in (tmp_path / "state" / "jobs.db", tmp_path / "state" / "jobs.db-wal"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) & 0o077 == 0
    store.close()


def test_a_deleted_store_file_refuses_writes_instead_of_losing_them(tmp_path):
    """Regression: deleting the store while running lost every later job silently."""
    from slimray.service.store import StoreUnavailable

    store = Store(tmp_path / "jobs.db")
    job = store.create("j", {})
    (tmp_path / "jobs.db").unlink()
    with pytest.raises(StoreUnavailable, match="gone"):
        store.create("k", {})
    with pytest.raises(StoreUnavailable):
        store.transition(job.id, JobState.RUNNING)
    with pytest.raises(StoreUnavailable):
        store.ping()


def test_a_full_disk_is_store_unavailable_not_a_bare_error(tmp_path):
    from slimray.service.store import StoreUnavailable

    store = Store(tmp_path / "jobs.db")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")  # fault: the disk is full
    with pytest.raises(StoreUnavailable, match="full"):
        for i in range(200):
            store.create(f"j{i}", {"pad": "x" * 4000})


def test_a_cancel_before_the_claim_wins_and_one_after_is_marked_to_stop(store):
    """Regression (issue 8, item 12): the reconciler submitted jobs cancelled meanwhile."""
    first, second = store.create("a", {}), store.create("b", {})
    store.cancel(first.id, reason="user")
    assert not store.claim_submission(first.id, "slimray-a")
    assert store.get(first.id).ray_job_id is None and not store.get(first.id).stop_pending
    assert store.claim_submission(second.id, "slimray-b")
    store.cancel(second.id, reason="user")
    assert [j.id for j in store.pending_stops()] == [second.id]
    store.stop_confirmed(second.id)
    assert store.pending_stops() == []
