"""The per-job series the alerts read: state, failure type, last prune event; and Ray's
reachability, service-wide."""

from __future__ import annotations

from prometheus_client import generate_latest

from slimray.core.jobstate import JobState
from slimray.service.executor import submission_id
from slimray.service.metrics import build_registries, error_type
from slimray.service.store import Store


def test_error_types_are_read_from_the_error_text():
    assert error_type("MaskDisagreementError: group 'conv1' at step 30") == "MaskDisagreementError"
    assert error_type("TrainingFailedError: ... WorkerGroupStartupTimeoutError ...") == "TrainingFailedError"
    assert error_type("the driver vanished") == "other" and error_type(None) == "other"


def test_alert_series(tmp_path):
    store = Store(tmp_path / "j.db")
    ok, bad = store.create("ok", {}), store.create("bad", {})
    for job in (ok, bad):
        store.claim_submission(job.id, submission_id(job.id))
        store.mark_submitted(job.id)
        store.transition(job.id, JobState.RUNNING)
    store.add_prune_event(
        ok.id, 5, {"step": 5, "durations": {"score": 1.5, "surgery": 2.0, "retrace": None}}, 1
    )
    store.finish(bad.id, JobState.FAILED, None, reason="t", error="MaskDisagreementError: at step 30")
    reachable = {"value": None}
    registries = build_registries(store, 10, lambda: reachable["value"])
    text = generate_latest(registries.full).decode()
    assert f'slimray_job_state{{job="{ok.id}",state="running"}} 1.0' in text
    assert f'slimray_job_failed_info{{error_type="MaskDisagreementError",job="{bad.id}"}} 1.0' in text
    assert f'slimray_last_prune_event_seconds{{job="{ok.id}"}} 3.5' in text
    assert "slimray_ray_reachable" not in text  # not probed yet
    reachable["value"] = False
    assert "slimray_ray_reachable 0.0" in generate_latest(registries.public).decode()
    assert ok.id not in generate_latest(registries.public).decode()


def test_each_job_is_labelled_with_its_backend_for_comparison(tmp_path):
    """`slimray_job_info{job, backend}`: the dashboard joins it on `job` to compare backends; a
    spec stored before the field existed counts as the default backend."""
    store = Store(tmp_path / "j.db")
    hvd, old = store.create("h", {"backend": "horovod"}), store.create("o", {})
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_job_info{{backend="horovod",job="{hvd.id}"}} 1.0' in text
    assert f'slimray_job_info{{backend="tf-collective",job="{old.id}"}} 1.0' in text


def test_a_jobs_restarts_are_counted(tmp_path):
    """`slimray_restarts_total{job}`: the worker groups replaced so far, from the job's latest
    report (issue 23: a restart, even from step 0, is visible in the metrics)."""
    store = Store(tmp_path / "j.db")
    job = store.create("r", {})
    store.update_progress(job.id, {"step": 40}, {"restarts": 2})
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_restarts_total{{job="{job.id}"}} 2.0' in text


def test_a_jobs_startup_is_exposed_by_part(tmp_path):
    """`slimray_startup_seconds{job, part}` (issue 27), from the driver's "startup" event."""
    store = Store(tmp_path / "j.db")
    job, quiet = store.create("s", {}), store.create("q", {})
    store.update_progress(
        job.id, {"step": 0}, {"startup": {"ray": 2.5, "framework_import": 9.0, "total": 11.5}}
    )
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_startup_seconds{{job="{job.id}",part="framework_import"}} 9.0' in text
    assert f'slimray_startup_seconds{{job="{job.id}",part="ray"}} 2.5' in text
    assert 'part="total"' not in text and f'job="{quiet.id}",part=' not in text


def test_a_threshold_jobs_rule_and_the_sparsity_it_reached_by_group_are_exposed(tmp_path):
    """The threshold rule (issue 24): its tau and, after the job's last event, each group's
    sparsity, an outcome the user did not choose; a sparsity job has no threshold series."""
    store = Store(tmp_path / "j.db")
    job, plain = store.create("t", {}), store.create("p", {})
    first = {"step": 30, "threshold": 0.6, "target_sparsity": None, "group_sparsity": {"conv1": 0.25}}
    store.add_prune_event(job.id, 30, first, 1)
    second = {**first, "step": 60, "group_sparsity": {"conv1": 0.5, "fc": 0.125}}
    store.add_prune_event(job.id, 60, second, 2)
    sparsity_event = {"step": 30, "target_sparsity": 0.5, "group_sparsity": {"fc": 0.5}}
    store.add_prune_event(plain.id, 30, sparsity_event, 1)
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_prune_threshold{{job="{job.id}"}} 0.6' in text
    assert f'slimray_group_sparsity_ratio{{group="conv1",job="{job.id}"}} 0.5' in text  # the last event's
    assert f'slimray_group_sparsity_ratio{{group="fc",job="{job.id}"}} 0.125' in text
    assert f'slimray_group_sparsity_ratio{{group="fc",job="{plain.id}"}} 0.5' in text
    assert f'slimray_prune_threshold{{job="{plain.id}"}}' not in text


def test_a_target_jobs_step_and_what_it_kept_are_exposed_by_metric(tmp_path):
    """A cost target (issue 24): the last event's share of the dense count aimed at and kept; a
    sparsity job has neither series."""
    store = Store(tmp_path / "j.db")
    job, plain = store.create("t", {}), store.create("p", {})
    for n, (step, keep, kept) in enumerate([(30, 0.75, 0.74), (60, 0.5, 0.49)], start=1):
        event = {"step": step, "target_sparsity": None,
                 "cost_target": {"metric": "flops", "keep": keep, "kept": kept}}  # fmt: skip
        store.add_prune_event(job.id, step, event, n)
    store.add_prune_event(plain.id, 30, {"step": 30, "target_sparsity": 0.5}, 1)
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_prune_target_ratio{{job="{job.id}",metric="flops"}} 0.5' in text  # the last event's
    assert f'slimray_prune_kept_ratio{{job="{job.id}",metric="flops"}} 0.49' in text
    assert f'job="{plain.id}",metric=' not in text


def test_a_jobs_rollbacks_are_counted_from_its_last_report(tmp_path):
    """The accuracy budget (issue 24): the rollbacks a job's last report counted; 0 is exposed too."""
    from slimray.service.api.events import kept_metrics
    from slimray.service.api.schemas import ReportIn

    store = Store(tmp_path / "j.db")
    budget, plain = store.create("b", {}), store.create("p", {})
    report = ReportIn.model_validate({"step": 45, "total_steps": 90, "rollbacks": 2})
    store.update_progress(budget.id, {"step": 45}, kept_metrics({}, report))
    zero = ReportIn.model_validate({"step": 45, "rollbacks": 0})  # a driver's report always counts them
    store.update_progress(plain.id, {"step": 45}, kept_metrics({}, zero))
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_prune_rollbacks_total{{job="{budget.id}"}} 2.0' in text
    assert f'slimray_prune_rollbacks_total{{job="{plain.id}"}} 0.0' in text


def test_an_event_the_budget_undid_no_longer_sets_the_rule_gauges(tmp_path):
    """Regression (issue 24): after a rollback the target gauges still showed the undone event's."""
    from slimray.service.api.events import kept_metrics
    from slimray.service.api.schemas import UNDONE_EVENTS, ReportIn

    store = Store(tmp_path / "j.db")
    job = store.create("t", {})
    for n, (step, keep, kept) in enumerate([(30, 0.75, 0.74), (60, 0.5, 0.49)], start=1):
        event = {"step": step, "target_sparsity": None, "group_sparsity": {"conv1": 1 - kept},
                 "cost_target": {"metric": "flops", "keep": keep, "kept": kept}}  # fmt: skip
        store.add_prune_event(job.id, step, event, n)
    undone = {"event_step": 60, "step": 75, "accuracy": 0.5, "reference": 0.9, "budget": 0.01, "level": 0.5}
    metrics = kept_metrics({}, ReportIn.model_validate({"step": 75, "rollbacks": 1, "rollback": undone}))
    assert metrics[UNDONE_EVENTS] == [60]
    store.update_progress(job.id, {"step": 75}, kept_metrics(metrics, ReportIn.model_validate({"step": 80})))
    text = generate_latest(build_registries(store, 10, lambda: None).full).decode()
    assert f'slimray_prune_target_ratio{{job="{job.id}",metric="flops"}} 0.75' in text  # event 30's
    assert f'slimray_prune_kept_ratio{{job="{job.id}",metric="flops"}} 0.74' in text
    assert f'slimray_group_sparsity_ratio{{group="conv1",job="{job.id}"}} 0.26' in text
    assert f'slimray_prune_events_total{{job="{job.id}"}} 2.0' in text  # both were applied
    many = {UNDONE_EVENTS: list(range(20))}  # bounded: the newest `most_undone`
    again = kept_metrics(many, ReportIn.model_validate({"rollback": {**undone, "event_step": 99}}), 3)
    assert again[UNDONE_EVENTS] == [18, 19, 99]


EXPOSED_HELP = {
    "slimray_train_samples_per_second": "Training samples per second, all workers.",
    "slimray_throughput_gain_ratio": "Samples/s relative to the unpruned phase.",
    "slimray_model_parameters": "Parameters of the current (pruned) model.",
    "slimray_model_flops_per_sample": "FLOPs per sample of the current model.",
    "slimray_sparsity_ratio": "Fraction of prunable channels removed (0-1).",
    "slimray_gradient_allreduce_bytes_per_step":
        "Bytes of gradients each worker allreduces per step (falls as the model shrinks).",
    "slimray_prune_events_total": "Prune events applied.",
    "slimray_score_allreduce_bytes_total": "Bytes of channel scores allreduced.",
    "slimray_prune_event_duration_seconds": "Duration of each phase of a prune event.",
    "slimray_job_state": "1 for the job's current state.",
    "slimray_job_failed_info": "1 for a failed job, by the error's type.",
    "slimray_last_prune_event_seconds": "Duration of the job's last prune event.",
    "slimray_group_sparsity_ratio":
        "Fraction of each channel group's unpruned channels removed, as of the job's last prune event.",
    "slimray_prune_threshold":
        "The importance threshold the job's last prune event applied (jobs with prune.threshold).",
    "slimray_prune_target_ratio": "The share of the dense model's FLOPs or parameters (`metric`) the job's "
        "last prune event aimed to keep: its step toward prune.target (the target itself at the last event).",
    "slimray_prune_kept_ratio": "The share of the dense model's FLOPs or parameters (`metric`) the job's "
        "last prune event kept (jobs with prune.target; counted on the shrunk model).",
    "slimray_job_info": "1 per job, labelled with the backend that allreduces its gradients and scores.",
    "slimray_workers": "Training workers in the job's current worker group (elastic jobs resize it).",
    "slimray_restarts_total":
        "Worker groups replaced (from a checkpoint or from step 0), driver resumes included.",
    "slimray_prune_rollbacks_total": "Prune events the accuracy budget undid (prune.max_accuracy_drop): "
        "the model went back to the one before the event.",
    "slimray_startup_seconds": "Seconds of the job's start-up, by part: ray, driver, controller, "
        "worker_processes, framework_import, group_join, model_setup.",
    "slimray_jobs": "Jobs in the store, by state.",
    "slimray_ray_reachable": "1 if Ray's job API answered the last probe.",
    "slimray_http_request_duration_seconds":
        "HTTP request latency by route template, method and status class.",
}  # fmt: skip


def test_every_family_keeps_its_name_and_help(tmp_path):
    """The families are described once as data (`core.metric_families`); the dashboard and the
    alerts read these names."""
    store = Store(tmp_path / "j.db")
    store.create("j", {})
    text = generate_latest(build_registries(store, 10, lambda: True).full).decode()
    lines = [line.removeprefix("# HELP ") for line in text.splitlines() if line.startswith("# HELP ")]
    helps = dict(line.split(" ", 1) for line in lines)
    assert helps == EXPOSED_HELP
