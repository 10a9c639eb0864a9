"""What the CLI prints, from report and job dicts alone: no Keras, Ray or service needed."""

from __future__ import annotations

import pytest

from slimray.cli.render import (
    approximate_line,
    event_line,
    human,
    job_line,
    print_prune_report,
    print_run_summary,
)
from slimray.core.records import CostGoal, KeptWholeLayer, PruneDurations, PruneEvent

LN = ["block1/ln", "block2/ln"]


def _prune_report(**extra) -> dict:
    return {
        "sparsity": 0.5, "output": "small.keras", "digest": "ab" * 32,
        "groups": [{"id": "c0", "layers": ["c0", "bn0"], "size": 8, "kept": [0, 2, 5, 7]}],
        "params_before": 1200, "params_after": 640, "flops_before": 9000, "flops_after": 4100,
        "kept_whole": [], "approximate": [], **extra,
    }  # fmt: skip


def _event(**extra) -> dict:
    """A prune event as report.json holds it (wire names)."""
    return PruneEvent(step=4, target_sparsity=0.5, sparsity=0.5, groups_pruned=1, channels_before=8,
                      channels_after=4, params_before=100, params_after=60, flops_before=1000,
                      flops_after=500, digest="d", local_scores_sha="s", **extra).model_dump()  # fmt: skip


def _run_report(events: list[dict]) -> dict:
    return {
        "job": "r", "state": "succeeded", "params": {"before": 100, "after": 60},
        "flops_per_sample": {"before": 1000, "after": 500}, "prune_events": events,
    }  # fmt: skip


def _printed(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())


def test_a_prune_report_names_its_approximate_layers(capsys):
    print_prune_report(_prune_report(approximate=LN))
    assert "Approximate (statistics change): block1/ln, block2/ln" in _printed(capsys)


def test_an_exact_prune_prints_no_approximate_line(capsys):
    print_prune_report(_prune_report())
    text = _printed(capsys)
    assert "Channel groups pruned at sparsity 0.5" in text and "saved small.keras digest abababab" in text
    assert "Approximate" not in text and "Kept whole" not in text


def test_a_prune_report_lists_the_layers_it_kept_whole(capsys):
    kept = [{"path": "mix", "operation": "keras.layers.Reshape", "flops_share": 0.25}]
    print_prune_report(_prune_report(kept_whole=kept))
    text = _printed(capsys)
    assert "Kept whole" in text and "mix" in text and "25.0%" in text


def test_a_run_summary_names_the_last_events_approximate_and_kept_whole_layers(capsys):
    kept = [KeptWholeLayer(path="mix", operation="keras.layers.Reshape", reason="r", flops_share=0.1)]
    print_run_summary(_run_report([_event(approximate=["old/ln"]), _event(approximate=LN, kept_whole=kept)]))
    text = _printed(capsys)
    assert "Approximate (statistics change): block1/ln, block2/ln" in text and "old/ln" not in text
    assert "kept whole (slimray cannot prune through it): mix (keras.layers.Reshape), 10.0%" in text


@pytest.mark.parametrize("events", [[], [_event()]])
def test_a_run_summary_without_approximations_prints_no_line(capsys, events):
    print_run_summary(_run_report(events))
    text = _printed(capsys)
    assert "r: succeeded" in text and "Approximate" not in text


def test_the_approximate_line_names_the_paths_or_is_absent():
    assert approximate_line(["a"]) == "Approximate (statistics change): a"
    assert approximate_line([]) is None


def test_a_job_line_and_human_counts():
    job = {"id": "abc", "name": "j", "state": "running", "progress": {"step": 3, "total_steps": 9},
           "metrics": {"params": 1_234_567, "throughput_gain": 1.5}, "prune_events": [{}]}  # fmt: skip
    assert job_line(job) == "abc  j  running  step 3/9  gain 1.50x  params 1.235M  prune events 1"
    assert human(999) == "999" and human(2_000_000_000) == "2G"


def test_a_target_jobs_line_shows_its_goal_against_what_it_kept():
    base = {"id": "abc", "name": "j", "state": "running", "progress": {}, "metrics": {}}
    running = {**base, "prune_events": [{"cost_target": {"metric": "flops", "keep": 0.75, "kept": 0.74}}]}
    assert job_line(running).endswith("prune events 1  flops 74.0% of dense (this step's target 75.0%)")
    outcome = {"metric": "params", "target": 0.2, "kept": 0.31, "reached": False,
               "limited_by": "every prunable group is at its floor"}  # fmt: skip
    ended = {**base, "state": "succeeded", "prune_events": [{}], "report": {"target": outcome}}
    assert job_line(ended).endswith(
        "params target 20.0%: kept 31.0% (missed: every prunable group is at its floor)"
    )
    thresholded = {**base, "prune_events": [{"threshold": 0.6}]}
    assert job_line(thresholded).endswith("prune events 1  threshold 0.6")


def test_a_prune_event_line_renders_the_typed_event_with_unmeasured_phases():
    event = PruneEvent(step=7, target_sparsity=0.5, sparsity=0.5, groups_pruned=2, channels_before=64,
                       channels_after=32, params_before=421_600, params_after=105_900, flops_before=2,
                       flops_after=1, digest="d", local_scores_sha="s",
                       durations=PruneDurations(score=0.012, allreduce=0.0015))  # fmt: skip
    line = event_line(event)
    assert "prune @ step 7: channels 64 -> 32" in line
    goal = CostGoal(metric="flops", keep=0.5, kept=0.49)
    goal = event.model_copy(update={"target_sparsity": None, "cost_target": goal})
    assert "prune @ step 7 (flops target 50.0% of dense: kept 49.0%, sparsity 50.0%)" in event_line(goal)
    assert "score 12 ms" in line and "allreduce 1.5 ms" in line
    assert "surgery 0 ms" in line and "retrace 0 ms" in line  # not measured yet: None
    by_threshold = event.model_copy(update={"target_sparsity": None, "threshold": 0.6, "sparsity": 0.3125})
    assert "prune @ step 7 (threshold 0.6: sparsity 31.2%): channels 64 -> 32" in event_line(by_threshold)


def test_a_run_summary_shows_the_startup_by_part_and_the_live_line_names_each_part(capsys):
    """Issue 27: the CLI's table of the start-up's parts, and the line printed when it is known."""
    from slimray.cli.render import startup_line
    from slimray.core.startup import StartupBreakdown

    startup = StartupBreakdown(ray=2.0, controller=3.0, framework_import=9.0, total=14.0, first_trace=1.5)
    print_run_summary({**_run_report([]), "startup": startup.model_dump()})
    out = _printed(capsys)
    assert "start-up 14.0 s, by part" in out and "framework_import │ 9.0 │ 64%" in out
    assert "(first trace) │ 1.5" in out
    line = startup_line(startup)
    assert (
        line.startswith("started in 14.0 s: ray 2.0, driver 0.0, controller 3.0") and "group join 0.0" in line
    )


def test_a_report_without_a_startup_prints_no_startup_table(capsys):
    print_run_summary(_run_report([]))
    assert "by part" not in _printed(capsys)


ROLLBACK = {"event_step": 30, "step": 45, "accuracy": 0.41, "reference": 0.9, "budget": 0.01, "level": 0.95,
            "retry_level": 0.475}  # fmt: skip


def test_a_rollback_is_said_live_in_the_summary_and_counted_in_the_job_line(capsys):
    from slimray.cli.render import RunProgress, rollback_line
    from slimray.core.records import Rollback

    line = rollback_line(Rollback(**ROLLBACK))
    assert line == ("rollback @ step 45: the event of step 30 (to 0.95) left val accuracy 0.4100, more than "
                    "0.01 below 0.9000; its model restored, retrying at 0.475")  # fmt: skip
    assert rollback_line(Rollback(**{**ROLLBACK, "retry_level": None})).endswith("pruning stops")
    print_run_summary({**_run_report([_event()]), "rollbacks": [ROLLBACK]})
    assert "rollback @ step 45: the event of step 30" in _printed(capsys)
    progress = RunProgress(quiet=False)
    progress("start", {"total_steps": 90, "world": 2, "n_train": 100, "run_dir": "r"})
    progress("report", {"step": 45, "phase": 1, "total_steps": 90, "params": 10, "flops": 20, "rollbacks": 1,
                        "rollback": ROLLBACK})  # fmt: skip
    progress("end", {})
    assert "rollback @ step 45" in _printed(capsys)
    job = {"id": "a", "name": "j", "state": "running", "progress": {}, "metrics": {"rollbacks": 2},
           "prune_events": [{}, {}]}  # fmt: skip
    assert job_line(job).endswith("prune events 2  rolled back 2 (accuracy budget)")


def test_a_run_summary_says_when_an_auto_schedule_started_and_why(capsys):
    from slimray.cli.render import auto_start_line
    from slimray.core.records import MaskCheck

    settled = [MaskCheck(step=0), MaskCheck(step=10, distance=0.2), MaskCheck(step=20, distance=0.01),
               MaskCheck(step=30, distance=0.004, start="settled")]  # fmt: skip
    assert auto_start_line(settled) == (
        "auto schedule: pruning started at step 30, the mask had settled (mask change by step: "
        "10: 0.200, 20: 0.010, 30: 0.004)")  # fmt: skip
    late = [MaskCheck(step=0), MaskCheck(step=10, distance=0.5), MaskCheck(step=45, start="latest")]
    assert "started at step 45, its latest start came before the mask settled" in auto_start_line(late)
    assert auto_start_line([MaskCheck(step=0)]).startswith("auto schedule: pruning never started")
    print_run_summary({**_run_report([_event()]), "mask_checks": [c.model_dump() for c in settled]})
    assert "auto schedule: pruning started at step 30" in _printed(capsys)
    print_run_summary(_run_report([_event()]))
    assert "auto schedule" not in _printed(capsys)
