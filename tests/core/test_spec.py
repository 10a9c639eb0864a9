"""Job spec: every invalid field is rejected with its path; valid specs round-trip."""

from __future__ import annotations

import json

import pytest
import yaml

from slimray.core.spec import BUILTIN_MODELS as SPEC_MODELS
from slimray.core.spec import JobSpec, SpecError, json_schema, load_spec, parse_spec
from slimray.zoo.models import BUILTIN_MODELS

GOOD = {
    "model": {"source": "seed_cnn"},
    "data": {"source": "mnist"},
    "train": {"epochs": 3},
    "prune": {"criterion": "taylor", "schedule": {"kind": "iterative", "start": 10, "end": 30,
                                                  "every": 10}},
}  # fmt: skip


def test_the_example_job_is_valid_and_round_trips():
    spec = load_spec("examples/mnist.yaml")
    assert spec.scaling.num_workers == 2 and spec.prune.sparsity == 0.5
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    assert parse_spec(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec


def test_json_and_yaml_files_load(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(GOOD))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(GOOD))
    assert load_spec(tmp_path / "a.json") == load_spec(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"model": {"source": "resnet999"}}, "model.source"),
        ({"model": {"source": "m.keras", "kwargs": {"a": 1}}}, "model"),
        ({"data": {"source": "x.csv"}}, "data"),
        ({"train": {"epochs": 3, "steps": 5}}, "train"),
        ({"train": {}}, "train"),
        ({"train": {"epochs": 2, "batch_size": 0}}, "train.batch_size"),
        ({"train": {"epochs": 2, "learning_rate": -1}}, "train.learning_rate"),
        ({"train": {"epochs": 2, "optimizer": "adagrad2"}}, "train.optimizer"),
        ({"prune": {"criterion": "l7", "schedule": {"kind": "one_shot", "step": 1}}}, "prune.criterion"),
        ({"prune": {"sparsity": 1.0, "schedule": {"kind": "one_shot", "step": 1}}}, "prune.sparsity"),
        ({"prune": {"schedule": {"kind": "iterative", "start": 9, "end": 3, "every": 1}}},
         "prune.schedule"),
        ({"prune": {"schedule": {"kind": "cosine"}}}, "prune.schedule"),
        ({"prune": {"round_to": 0, "schedule": {"kind": "one_shot", "step": 1}}}, "prune.round_to"),
        ({"prune": {"threshold": 0, "schedule": {"kind": "one_shot", "step": 1}}}, "prune.threshold"),
        ({"prune": {"sparsity": 0.5, "threshold": 0.3, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune"),
        ({"prune": {"sparsity": None, "schedule": {"kind": "one_shot", "step": 1}}}, "prune"),
        ({"prune": {"threshold": float("inf"), "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.threshold"),
        ({"prune": {"threshold": 1.0, "normalizer": "max", "schedule": {"kind": "one_shot", "step": 1}}},
         "prune"),
        ({"prune": {"target": {"flops": 0.5}, "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune"),
        ({"prune": {"target": {"flops": 1.0}, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.target.flops"),
        ({"prune": {"target": {"params": 0}, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.target.params"),
        ({"prune": {"target": {}, "schedule": {"kind": "one_shot", "step": 1}}}, "prune.target"),
        ({"prune": {"target": {"flops": 0.5, "params": 0.5}, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.target"),
        ({"prune": {"target": {"throughput_gain": 2.0}, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.target"),
        ({"prune": {"target": {"latency": 0.5}, "schedule": {"kind": "one_shot", "step": 1}}},
         "prune.target.latency"),
        ({"prune": {"target": {"params": 0.5}, "schedule": {"kind": "polynomial", "initial_sparsity": 0.6,
                                                            "begin_step": 1, "end_step": 9}}}, "prune"),
        ({"prune": {"schedule": {"kind": "auto", "epsilon": 1.0}}}, "prune.schedule.epsilon"),
        ({"prune": {"schedule": {"kind": "auto", "every": 0}}}, "prune.schedule.every"),
        ({"prune": {"schedule": {"kind": "auto", "sometimes": 1}}}, "prune.schedule.sometimes"),
        ({"prune": {"max_accuracy_drop": 0.01, "recovery_steps": 30,
                    "schedule": {"kind": "auto", "spacing": 10}}}, "prune"),
        ({"scaling": {"num_workers": 0}}, "scaling.num_workers"),
        ({"scaling": {"gpus_per_worker": 1}}, "scaling"),
        ({"failure": {"max_failures": -2}}, "failure.max_failures"),
        ({"failure": {"collective_timeout_seconds": 0.5}}, "failure.collective_timeout_seconds"),
        ({"name": "bad name!"}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)  # fmt: skip
def test_invalid_fields_are_named(patch, path):
    with pytest.raises(SpecError) as info:
        parse_spec({**GOOD, **patch})
    assert any(p.split(":")[0] == path for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once():
    bad = {**GOOD, "train": {"epochs": 0}, "scaling": {"num_workers": 0}}
    with pytest.raises(SpecError) as info:
        parse_spec(bad, "job.yaml")
    assert "job.yaml" in str(info.value) and len(info.value.problems) == 2
    assert "(got 0)" in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


def test_schedule_and_criterion_translate_to_pruning_objects():
    from slimray.pruning import MaskPlanner, get_criterion, get_schedule

    spec = parse_spec(GOOD)
    schedule = get_schedule(spec.prune.schedule_config())
    assert [s for s, _ in schedule.events()] == [10, 20, 30]
    assert schedule.final_sparsity == pytest.approx(0.5)
    assert get_criterion(spec.prune.criterion_identifier()).needs_data
    MaskPlanner.from_config(spec.prune.planner_config())


def test_a_threshold_job_has_no_sparsity_its_schedule_gives_steps_and_it_round_trips():
    prune = {**GOOD["prune"], "threshold": 0.4}
    spec = parse_spec({**GOOD, "prune": prune})
    assert (spec.prune.sparsity, spec.prune.threshold) == (None, 0.4)
    assert spec.prune.schedule.event_steps() == [10, 20, 30]
    assert parse_spec(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec
    with pytest.raises(ValueError, match="schedule.event_steps"):
        spec.prune.schedule_config()
    with pytest.raises(SpecError, match=r"sparsity=0.5, threshold=0.4"):
        parse_spec({**GOOD, "prune": {**prune, "sparsity": 0.5}})


def test_a_target_job_has_no_sparsity_its_schedule_rises_to_the_share_removed_and_it_round_trips():
    from slimray.pruning import get_schedule

    prune = {**GOOD["prune"], "target": {"flops": 0.4}}
    spec = parse_spec({**GOOD, "prune": prune})
    assert (spec.prune.sparsity, spec.prune.target.metric, spec.prune.target.keep) == (None, "flops", 0.4)
    events = get_schedule(spec.prune.schedule_config()).events()
    assert [(s, round(r, 6)) for s, r in events] == [(10, 0.2), (20, 0.4), (30, 0.6)]  # of the dense FLOPs
    assert parse_spec(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec
    with pytest.raises(SpecError, match=r"sparsity=0.5, threshold=None, target=\{'flops': 0.4\}"):
        parse_spec({**GOOD, "prune": {**prune, "sparsity": 0.5}})
    with pytest.raises(SpecError, match="throughput_gain=2.0 is not supported yet"):
        parse_spec({**GOOD, "prune": {**GOOD["prune"], "target": {"throughput_gain": 2}}})


def test_json_schema_is_exported_and_lists_the_sections():
    schema = json_schema()
    assert set(schema["properties"]) >= {"model", "data", "train", "prune", "scaling", "failure",
                                         "output"}  # fmt: skip
    json.dumps(schema)


def test_spec_knows_every_built_in_model():
    assert set(SPEC_MODELS) == set(BUILTIN_MODELS)


def test_spec_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, slimray.core.spec; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _nested(depth: int):
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("patch", "field"), [
    ({"prune": {"sparsity": 0.3, "schedule": {"kind": "polynomial", "begin_step": 0, "end_step": 10,
                                              "initial_sparsity": 0.6}}}, "prune"),
    ({"data": {"source": "synthetic", "synthetic": {"shape": [-5]}}}, "data.synthetic.shape.0"),
    ({"data": {"source": "mnist", "shape": [0, 4]}}, "data.shape.0"),
    ({"model": {"source": "seed_cnn", "kwargs": _nested(400)}}, "model.kwargs"),
    ({"model": {"source": "seed_cnn\x00.keras"}}, "model.source"),
    ({"data": {"source": "x\x00.npz"}}, "data.source"),
    ({"train": {"steps": 10**30}}, "train.steps"),
    ({"train": {"steps": 10, "batch_size": 10**9}}, "train.batch_size"),
    ({"scaling": {"cpus_per_worker": 1e9}}, "scaling.cpus_per_worker"),
    ({"data": {"source": "synthetic", "synthetic": {"num_classes": 10**9}}}, "data.synthetic.num_classes"),
])  # fmt: skip
def test_specs_that_cannot_run_are_refused_naming_the_field(patch, field):
    """Regressions of issue 8 (items 10, 11, 16): each of these was accepted or gave a 500."""
    data = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 10},
            **patch}  # fmt: skip
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    assert any(p.startswith(f"{field}:") for p in err.value.problems), err.value.problems


def test_builder_options_are_bounded_in_size():
    """The spec reaches the driver in an environment variable (Linux caps one at 128 KB): a
    200 KB spec sat PENDING in Ray; now options past 16 KB are refused up front."""
    data = {"model": {"source": "seed_cnn", "kwargs": {"pad": "x" * 20_000}}, "data": {"source": "mnist"},
            "train": {"steps": 10}}  # fmt: skip
    with pytest.raises(SpecError, match="model.kwargs: .*bytes as JSON"):
        parse_spec(data)


def test_the_output_location_rule_one_node_a_uri_or_a_declared_shared_mount():
    from slimray.core.spec import OutputSpec

    local = OutputSpec(dir="/runs/job")
    assert local.cluster_problem(None) is None and local.cluster_problem(1) is None
    assert "set output.shared: true" in local.cluster_problem(2) and "2 nodes" in local.cluster_problem(2)
    assert OutputSpec(dir="/runs/job", shared=True).cluster_problem(5) is None
    assert OutputSpec(dir="s3://b/runs/job").cluster_problem(5) is None
    assert OutputSpec(dir="file:///runs/job").cluster_problem(2) is not None


def test_the_planner_fields_are_the_planners_config_keys():
    from slimray.core.spec import PLANNER_FIELDS
    from slimray.pruning import MaskPlanner

    assert set(PLANNER_FIELDS) == set(MaskPlanner().get_config())


CARRIED = {  # what a URI may not carry (issue 23 M1), each as the attacker used it
    "query": ("s3://bucket/train/x.parquet?endpoint_override=127.0.0.1:9&scheme=http", "a query"),
    "fragment": ("s3://bucket/train/x.parquet#frag", "a fragment"),
    "userinfo": ("s3://key:secret@bucket/train/x.parquet", "userinfo"),
    "port": ("s3://bucket:9000/train/x.parquet", "a port"),
}


@pytest.mark.parametrize("part", list(CARRIED))
@pytest.mark.parametrize("field", ["data.source", "model.source", "output.dir"])
def test_uris_carrying_a_query_fragment_userinfo_or_port_are_refused(part, field):
    """Regression (issue 23 M1): pyarrow honours `?endpoint_override=`, and the spec let it through."""
    uri, named = CARRIED[part]
    if field == "model.source":
        uri = uri.replace("x.parquet", "m") + ("&region=a.keras" if part == "query" else ".keras")
    section, key = field.split(".")
    spec = {**GOOD, section: {**GOOD.get(section, {}), key: uri}}
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert f"{field}: " in str(err.value) and uri in str(err.value) and named in str(err.value)


@pytest.mark.parametrize("location", ["s3://bucket/train/x.parquet", "data/a#1.parquet",
                                      "file:///data/x.npz", "my_pkg.nets:build"])  # fmt: skip
def test_plain_uris_and_local_paths_with_any_character_are_accepted(location):
    field = ("model", "source") if location.endswith(":build") else ("data", "source")
    spec = parse_spec({**GOOD, field[0]: {field[1]: location}})
    assert getattr(getattr(spec, field[0]), field[1]) == location


def test_an_auto_schedule_whose_events_do_not_fit_after_its_latest_start_is_refused():
    """Its events (and a budget's last check) must fit between the latest start and the end."""
    auto = {"kind": "auto", "events": 4, "spacing": 10, "latest": 60}
    expected = (r"4 events 10 steps apart \(and the last one's retrace\) take 31 steps, which do not fit "
                r"between the latest start \(step 60\) and train.steps 80")  # fmt: skip
    with pytest.raises(SpecError, match=expected):
        parse_spec({**GOOD, "train": {"steps": 80}, "prune": {**GOOD["prune"], "schedule": auto}})
    fits = parse_spec({**GOOD, "train": {"steps": 91}, "prune": {**GOOD["prune"], "schedule": auto}})
    assert fits.prune.schedule.event_count() == 4 and fits.prune.schedule.event_steps() == []
    budget = {**GOOD["prune"], "max_accuracy_drop": 0.01, "recovery_steps": 15, "schedule": {"kind": "auto"}}
    spec = parse_spec({**GOOD, "train": {"steps": 100}, "prune": budget})
    assert spec.prune.schedule.gap(15) == 15 and spec.prune.schedule.latest_start(100, 15) == 50  # half
    assert spec.prune.schedule.latest_start(60, 15) == 60 - 45  # earlier: 3 events and the last check fit
    epochs = parse_spec({**GOOD, "train": {"epochs": 1}, "prune": {**GOOD["prune"], "schedule": auto}})
    assert epochs.prune.schedule.latest == 60  # a length in epochs is not known before the data is
