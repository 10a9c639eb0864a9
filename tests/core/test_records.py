"""The run's records: merge rules across ranks, the exported gauges and kept metrics, the wire
names, and round trips through JSON."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from slimray.core.jsonsafe import finite
from slimray.core.metric_families import DRIVER_FAMILIES, WINDOW_GAUGES
from slimray.core.records import (
    PRUNE_PHASES,
    KeptWholeLayer,
    ProgressReport,
    PruneDurations,
    PruneEvent,
    Retain,
    RunReport,
    TimelineEntry,
    WindowReport,
    gauges,
    retained,
)


def _window(rank, **metrics):
    base = {"rank": rank, "step": 10, "time": 1.0, "pid": 100 + rank, "params": 50, "flops": 500}
    return WindowReport(**{**base, **metrics})


def _event(**fields):
    base = {"step": 10, "target_sparsity": 0.5, "sparsity": 0.5, "groups_pruned": 2, "channels_before": 8,
            "channels_after": 4, "params_before": 100, "params_after": 50, "flops_before": 1000,
            "flops_after": 500, "digest": "d", "local_scores_sha": "s"}  # fmt: skip
    return PruneEvent(**{**base, **fields})


def test_a_step_merges_each_metric_by_its_rule():
    windows = [
        _window(0, samples_per_second=10.0, step_time=0.1, loss=0.5, accuracy=0.8, val_accuracy=0.9,
                allreduce_bytes_total=8, gradient_allreduce_bytes_per_step=64),
        _window(1, samples_per_second=12.0, step_time=0.3, loss=0.25, accuracy=0.6, allreduce_bytes_total=8,
                gradient_allreduce_bytes_per_step=64),
    ]  # fmt: skip
    entry = TimelineEntry.merge(windows, phase=1)
    assert entry.samples_per_second == 22.0  # SUM: every rank's share
    assert entry.step_time == 0.3  # MAX: the slowest rank
    assert entry.loss == 0.75 and entry.accuracy == pytest.approx(0.7)  # SUM of shares, MEAN
    assert entry.val_accuracy == 0.9 and entry.params == 50  # FIRST: rank 0's
    assert entry.allreduce_bytes_total == 16 and entry.gradient_allreduce_bytes_per_step == 64
    assert (entry.step, entry.phase, entry.throughput_gain) == (10, 1, None)


def test_a_metric_rank_zero_lacks_stays_missing():
    entry = TimelineEntry.merge([_window(0), _window(1, val_accuracy=0.5)], phase=0)
    assert entry.val_accuracy is None and entry.gradient_allreduce_bytes_per_step is None


def test_the_exported_gauges_and_their_families():
    assert {field: g.name for field, g in gauges().items()} == {
        "samples_per_second": "train_samples_per_second",
        "params": "model_parameters",
        "flops": "model_flops_per_sample",
        "gradient_allreduce_bytes_per_step": "gradient_allreduce_bytes_per_step",
        "sparsity": "sparsity_ratio",
        "workers": "workers",
        "throughput_gain": "throughput_gain_ratio",
    }
    assert [f.field for f in WINDOW_GAUGES] == list(gauges())
    assert all(f.name == f"slimray_{gauges()[f.field].name}" for f in WINDOW_GAUGES)
    names = [f.name for f in DRIVER_FAMILIES]
    assert len(names) == len(set(names)) and all(n.startswith("slimray_") for n in names)


def test_the_service_keeps_these_metrics():
    kept = retained()
    assert kept.pop("val_accuracy") is Retain.LAST_KNOWN  # validation runs on some windows only
    assert set(kept) == {"samples_per_second", "throughput_gain", "params", "flops", "sparsity", "loss",
                         "accuracy", "step_time", "gradient_allreduce_bytes_per_step",
                         "restarts", "rollbacks", "workers"}  # fmt: skip
    assert set(kept.values()) == {Retain.LATEST}


def test_a_prune_event_keeps_its_wire_name_frozen():
    layer = KeptWholeLayer(path="lstm", operation="keras.layers.LSTM", reason="recurrent", flops_share=0.1)
    event = _event(kept_whole=[layer])
    data = json.loads(event.model_dump_json())
    assert "frozen" in data and "kept_whole" not in data
    assert PruneEvent.model_validate(data) == event  # read back by the wire name
    assert _event(frozen=[layer.model_dump()]).kept_whole == [layer]


def test_records_refuse_unknown_fields_and_negative_steps():
    with pytest.raises(ValidationError, match="typo"):
        _event(typo=1)
    with pytest.raises(ValidationError):
        _event(step=-1)
    with pytest.raises(ValidationError, match="samples_per_sec"):
        _window(0, samples_per_sec=1.0)


def test_durations_total_the_measured_phases():
    assert PRUNE_PHASES == ("score", "allreduce", "agreement", "surgery", "retrace")
    assert PruneDurations(score=1.0, surgery=0.5).total() == 1.5


def test_a_window_round_trips_through_json_with_its_event():
    window = _window(0, loss=0.5, accuracy=0.5, event=_event(durations=PruneDurations(score=0.1)),
                     final=True, weights_sha="w")  # fmt: skip
    assert WindowReport.model_validate_json(window.model_dump_json()) == window
    unmeasured = WindowReport.model_validate_json(_window(0).model_dump_json())  # NaN: null in JSON
    assert math.isnan(unmeasured.loss) and math.isnan(unmeasured.accuracy)


def test_a_progress_report_is_its_entry_with_the_step_count_and_event():
    entry = TimelineEntry.merge([_window(0, samples_per_second=5.0)], phase=0, elapsed_seconds=1.5)
    report = ProgressReport.of(entry, total_steps=100, event=_event())
    data = report.model_dump()
    assert {k: data[k] for k in entry.model_dump()} == entry.model_dump()
    assert data["total_steps"] == 100 and "frozen" in data["event"]
    assert math.isnan(data["loss"])  # NaN until the driver's JSON makes it null
    assert ProgressReport.model_validate(data) == report


def test_a_run_report_leaves_out_what_was_never_set():
    report = RunReport(job="j", state="failed", error="E: x")
    assert list(report.wire()) == ["job", "state", "error"]
    report.wall_seconds = 2.0
    assert list(report.wire()) == ["job", "state", "error", "wall_seconds"]
    assert RunReport.model_validate(report.wire()).wire() == report.wire()


def test_report_json_reads_back_as_a_run_report():
    entry = TimelineEntry.merge([_window(0)], phase=0)  # loss NaN: null in report.json
    report = RunReport(job="j", prune_events=[_event()], timeline=[entry])
    text = json.dumps(finite(report.wire()), allow_nan=False, default=str)  # as `write_report` does
    again = RunReport.model_validate_json(text)
    assert again.prune_events == report.prune_events and math.isnan(again.timeline[0].loss)
