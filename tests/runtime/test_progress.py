"""The progress channel: fire-and-forget sends over a real Ray actor, joined per step by rank."""

from __future__ import annotations

import time

import pytest

from slimray.core.records import WindowReport
from slimray.runtime.progress import WINDOW, ProgressChannel, StepMerger, WorkerMessage, _Channel


def _window(rank, step, attempt=1):
    report = WindowReport(rank=rank, step=step, time=100.0 + step, pid=1, samples_per_second=1.0,
                          params=10, flops=100)  # fmt: skip
    return WorkerMessage(WINDOW, rank, attempt, step, 100.0 + step, report)


def test_a_step_is_yielded_once_every_rank_sent_it_in_rank_order():
    merger = StepMerger(world=2)
    assert list(merger.add(_window(1, 10))) == []
    assert list(merger.add(_window(0, 20))) == []
    (joined,) = list(merger.add(_window(0, 10)))
    assert [r.rank for r in joined] == [0, 1] and {r.step for r in joined} == {10}
    assert joined[0].time == 110.0


def test_a_new_attempt_drops_the_old_ones_half_joined_steps_and_stragglers():
    merger = StepMerger(world=2)
    list(merger.add(_window(0, 30, attempt=1)))  # rank 1 died before sending step 30
    list(merger.add(_window(0, 30, attempt=2)))
    assert list(merger.add(_window(1, 30, attempt=1))) == []  # a straggler of the dead group
    (joined,) = list(merger.add(_window(1, 30, attempt=2)))
    assert len(joined) == 2


def test_a_window_message_must_carry_a_window_report():
    with pytest.raises(TypeError, match="WindowReport"):
        list(StepMerger(world=1).add(WorkerMessage(WINDOW, 0, 1, 5, 1.0, {"samples_per_second": 1.0})))


def test_the_pump_turns_a_merged_step_into_a_report_event():
    from slimray.core.records import PruneEvent
    from slimray.runtime.pump import ProgressPump
    from slimray.runtime.report import Timeline

    events, reports = [], []
    pump = ProgressPump(2, 100, lambda kind, data: events.append((kind, data)), Timeline(),
                        on_report=reports.append)  # fmt: skip
    event = PruneEvent(step=9, target_sparsity=0.5, sparsity=0.5, groups_pruned=1, channels_before=8,
                       channels_after=4, params_before=20, params_after=10, flops_before=200,
                       flops_after=100, digest="d", local_scores_sha="s")  # fmt: skip
    for rank in (0, 1):
        window = _window(rank, 10).payload.model_copy(update={"event": event})
        pump.handle(WorkerMessage(WINDOW, rank, 1, 10, 110.0, window))
    [(kind, data)] = events
    assert kind == "report" and reports[0].event.digest_by_rank == {"0": "d", "1": "d"}
    assert set(data) == {"step", "phase", "samples_per_second", "step_time", "loss", "accuracy", "params",
                         "flops", "gradient_allreduce_bytes_per_step", "sparsity", "val_accuracy",
                         "allreduce_bytes_total", "elapsed_seconds", "throughput_gain", "total_steps",
                         "event", "restarts", "rollbacks", "rollback", "workers"}  # fmt: skip
    assert data["samples_per_second"] == 2.0 and data["total_steps"] == 100 and "frozen" in data["event"]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from slimray.runtime.embedded_ray import start_embedded_ray

    start_embedded_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_messages_sent_from_a_remote_worker_arrive_in_order(ray_local):
    import ray

    channel = ProgressChannel()

    @ray.remote
    def worker(sender, n):
        for step in range(n):
            sender.send(_window(0, step))
        return True

    assert ray.get(worker.remote(channel.sender(), 200))
    received: list[WorkerMessage] = []
    for _ in range(50):
        received += channel.drain()
        if len(received) == 200:
            break
    assert [m.step for m in received] == list(range(200))
    assert channel.drain() == []  # drained means gone
    channel.close()


class _SlowInbox(_Channel):
    """Fault injection: the actor answers its first drain only after the driver stopped waiting
    (as a starved process does on a loaded machine)."""

    def __init__(self) -> None:
        super().__init__()
        self._slow = True

    def drain(self) -> list[WorkerMessage]:
        if self._slow:
            self._slow = False
            time.sleep(3)
        return super().drain()


class _SlowChannel(ProgressChannel):
    inbox = _SlowInbox


def test_a_drain_the_actor_answers_late_is_read_later_and_loses_nothing(ray_local):
    channel = _SlowChannel()
    sender = channel.sender()
    for step in range(5):
        sender.send(_window(0, step))
    assert channel.poll(0.2) == []  # not answered in time: the job goes on (it used to fail here)
    for step in range(5, 10):
        sender.send(_window(0, step))  # queued behind the slow drain
    received: list[WorkerMessage] = []
    for _ in range(100):
        received += channel.poll(0.2)
        if len(received) == 10:
            break
    assert [m.step for m in received] == list(range(10))  # in order, none lost
    assert channel.drain() == []
    channel.close()


def test_the_pump_records_and_counts_every_restart_with_its_cause():
    from slimray.runtime.progress import RESTART, STARTED
    from slimray.runtime.pump import ProgressPump
    from slimray.runtime.report import Timeline

    counted = []
    pump = ProgressPump(2, 100, lambda kind, data: None, Timeline(), on_restart=counted.append)
    pump.handle(WorkerMessage(STARTED, 0, 1, 0, 100.0, {"resumed_from": None}))
    hung = {"reason": "worker_hung", "cause": "rank 1 did not answer (hung)"}
    pump.handle(WorkerMessage(RESTART, -1, -1, -1, 101.0, hung))
    pump.handle(WorkerMessage(STARTED, 0, 2, 0, 102.0, {"resumed_from": 20, "warnings": ["w"]}))
    pump.handle(WorkerMessage(STARTED, 0, 3, 0, 103.0, {"resumed_from": 20}))  # no cause reported
    assert [(r.reason, r.step) for r in counted] == [("worker_hung", 20), ("worker_failed", 20)]
    assert pump.timeline.restarts == counted and pump.timeline.warnings == ["w"]
    assert pump.loop_started_at == 100.0
