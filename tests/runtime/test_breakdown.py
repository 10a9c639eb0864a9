"""The wall-time breakdown: phases accumulate, add up to the total, and what is unmeasured shows."""

from __future__ import annotations

import time

import pytest

from slimray.runtime.breakdown import PHASES, PhaseClock, WallTimeBreakdown


def test_a_phase_clock_accumulates_each_stretch():
    clock = PhaseClock()
    for _ in range(2):
        with clock.phase("data"):
            time.sleep(0.01)
    clock.add("training", 1.5)
    seconds = clock.snapshot()
    assert seconds["data"] >= 0.02 and seconds["training"] == 1.5


def test_a_phase_is_timed_even_when_its_code_raises():
    clock = PhaseClock()
    with pytest.raises(RuntimeError), clock.phase("export"):
        raise RuntimeError("boom")
    assert clock.snapshot()["export"] >= 0.0 and "export" in clock.snapshot()


def test_driver_and_worker_phases_add_up_to_the_total_with_the_rest_as_other():
    driver = {"startup": 10.0, "data": 1.0, "shutdown": 2.0, "export": 0.5}
    worker = {"data": 3.0, "tracing": 2.0, "training": 20.0, "prune_events": 1.0,
              "checkpoints": 0.5, "evaluation": 0.25, "progress": 0.25, "export": 1.5}  # fmt: skip
    b = WallTimeBreakdown.assemble(driver, worker, total=45.0)
    assert b.data == 4.0 and b.export == 2.0 and b.other == pytest.approx(3.0)
    assert set(b.to_dict()) == {*PHASES, "total"}
    assert sum(v for k, v in b.to_dict().items() if k != "total") == pytest.approx(45.0)
    assert b.fixed_cost == pytest.approx(25.0)
