"""Timeline: throughput phases, gain, per-rank evidence, restarts."""

from __future__ import annotations

import pytest

from slimray.runtime.report import Timeline, build_report, plot_report, write_report


def _report(step, sps, rank=0, event=None, resumed=None, params=100):
    return {"step": step, "rank": rank, "samples_per_second": sps, "step_time": 0.01,
            "loss": 1.0, "accuracy": 0.5, "params": params, "flops": 10 * params,
            "sparsity": 0.0, "peak_memory_bytes": 1000 + step, "event": event,
            "resumed_from": resumed, "allreduce_bytes_total": 8}  # fmt: skip


def _event(step, digest="d", sha="s"):
    return {"step": step, "digest": digest, "local_scores_sha": sha, "params_before": 100,
            "flops_before": 1000, "durations": {}}  # fmt: skip


def test_gain_is_measured_against_the_unpruned_phase_without_warmup():
    t = Timeline()
    t.add([_report(10, 5.0), _report(10, 5.0, rank=1)])  # warm-up window, ignored
    t.add([_report(20, 100.0), _report(20, 100.0, rank=1)])
    t.add([_report(21, 0.0, event=_event(20)), _report(21, 0.0, rank=1, event=_event(20, sha="t"))])
    entry = t.add([_report(30, 200.0, params=50), _report(30, 200.0, rank=1, params=50)])
    assert t.dense_throughput == 200.0 and t.final_throughput == 400.0
    assert entry["throughput_gain"] == pytest.approx(2.0)
    report = build_report(t, job="j")
    assert report["throughput_gain"] == pytest.approx(2.0)
    assert report["prune_events"][0]["local_scores_sha_by_rank"] == {"0": "s", "1": "t"}
    assert report["peak_memory_bytes_per_worker"] == {"0": 1030, "1": 1030}


def test_restart_drops_the_windows_it_replays():
    t = Timeline()
    t.add([_report(10, 100.0)])
    t.add([_report(21, 0.0, event=_event(20))])
    t.add([_report(30, 150.0)])
    t.add([_report(40, 150.0)])
    t.add([{**_report(30, 140.0, resumed=21), "pid": 7}])  # restarted from the step-21 checkpoint
    t.add([{**_report(40, 140.0, resumed=21), "pid": 7}])
    assert t.restarts == [21]
    t.add([{**_report(30, 140.0, resumed=21), "pid": 8}])  # a second restart, same checkpoint
    assert t.restarts == [21, 21]
    assert [e["step"] for e in t.entries] == [10, 21, 30]
    assert len(t.events) == 1


def test_report_json_is_strict(tmp_path):
    import json

    t = Timeline()
    t.add([{**_report(10, 100.0), "loss": float("nan")}])
    path = write_report(tmp_path, build_report(t, job="j", exported_accuracy=float("nan")))
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["exported_accuracy"] is None and data["timeline"][0]["loss"] is None


def test_report_files(tmp_path):
    t = Timeline()
    t.add([_report(10, 100.0)])
    t.add([_report(20, 120.0)])
    report = build_report(t, job="j")
    assert write_report(tmp_path, report).read_text().startswith("{")
    png = plot_report(tmp_path, report)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_dense_phase_of_one_window_still_gives_a_gain():
    # report_every 45 with the first prune event at 45: one dense window (it used to be dropped
    # as warm-up, leaving throughput_gain null)
    t = Timeline()
    t.add([_report(45, 100.0)])
    t.add([_report(46, 0.0, event=_event(45))])
    t.add([_report(90, 250.0, params=50)])
    assert t.dense_throughput == 100.0
    assert build_report(t, job="j")["throughput_gain"] == pytest.approx(2.5)
