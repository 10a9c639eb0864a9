"""The progress channel: fire-and-forget sends over a real Ray actor, joined per step by rank."""

from __future__ import annotations

import pytest

from slimray.core.records import WindowReport
from slimray.runtime.progress import WINDOW, ProgressChannel, StepMerger, WorkerMessage


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


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
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
