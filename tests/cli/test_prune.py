"""`slimray prune`: the real command, run as a user would, on a saved model; its checks in process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from slimray.cli.entry import CliError, main
from slimray.cli.prune import criterion_and_planner, weight_criteria
from slimray.pruning import criteria
from slimray.zoo.models import build_model
from tests.cli.helpers import ENV, slimray


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "resnet.keras"
    build_model("resnet", input_shape=(16, 16, 3), stage1=16, stage2=24, inner1=12, inner2=20).save(path)
    return path


def test_prune_writes_a_plain_keras_model_and_a_report(saved_model, tmp_path):
    out, report = tmp_path / "small.keras", tmp_path / "report.json"
    proc = slimray("prune", str(saved_model), "--sparsity", "0.5", "--output", str(out),
                    "--criterion", "l2", "--scope", "global", "--round-to", "4",
                    "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Channel groups pruned" in proc.stdout and "flops" in proc.stdout
    data = json.loads(report.read_text())
    assert data["params_after"] < data["params_before"]
    assert data["flops_after"] < data["flops_before"]
    by_id = {g["id"]: g for g in data["groups"]}
    assert set(by_id) == {"b1_conv2+stem", "b1_conv1", "b2_conv1", "b2_conv2+b2_proj"}
    for g in data["groups"]:
        assert len(g["kept"]) % 4 == 0 or len(g["kept"]) == g["size"]
        assert g["kept"] == sorted(g["kept"]) and g["layers"]
    assert data["layers_after"] and len(data["digest"]) == 64
    # loads with plain Keras, with no slimray import and no custom objects
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, keras; m = keras.models.load_model(sys.argv[1]); "
         "assert 'slimray' not in sys.modules; print(m.count_params())", str(out)],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert int(check.stdout.split()[-1]) == data["params_after"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--sparsity", "1.5"], "sparsity=1.5"), (["--criterion", "l7"], "l7"),
     (["--criterion", "taylor"], "needs data"), (["--round-to", "0"], "round_to=0"),
     (["--min-channels", "-3"], "min_channels=-3"), (["--threshold", "-1"], "threshold=-1.0"),
     (["--threshold", "0.5", "--sparsity", "0.5"], "not allowed with argument"),
     (["--flops", "0.5", "--params", "0.5"], "not allowed with argument"),
     (["--flops", "1.5"], "flops (the fraction kept) must be in (0, 1]. Received: 1.5")],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_them(saved_model, tmp_path, capsys, args, message):
    """The command's own entry point, in process (a process each costs a TensorFlow import)."""
    out = tmp_path / "x.keras"
    base = ["prune", str(saved_model), "--output", str(out)]
    if not {"--sparsity", "--threshold", "--flops", "--params"} & set(args):
        base += ["--sparsity", "0.5"]
    try:
        code = main([*base, *args])
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code
    printed = capsys.readouterr()
    assert code == 2
    assert message in (printed.out + printed.err).replace("\n", "")  # argparse writes to stderr
    assert not out.exists()


def test_missing_model_file(tmp_path):
    proc = slimray("prune", str(tmp_path / "nope.keras"), "--sparsity", "0.5",
                    "--output", str(tmp_path / "o.keras"))  # fmt: skip
    assert proc.returncode == 2 and "not found" in proc.stdout


def test_prune_by_threshold_removes_what_the_engine_removes_and_reports_the_sparsity_reached(
    saved_model, tmp_path
):
    """`--threshold`: the engine's rule (`Pruner.prune(threshold=...)`), the same mask; the
    sparsity reached is reported, since the user did not choose it."""
    import keras

    from slimray.pruning import MaskPlanner, Pruner

    out, report = tmp_path / "small.keras", tmp_path / "report.json"
    proc = slimray("prune", str(saved_model), "--threshold", "0.9", "--normalizer", "max",
                   "--output", str(out), "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert (data["sparsity"], data["threshold"]) == (None, 0.9)
    assert 0 < data["sparsity_reached"] < 1 and "threshold 0.9 (sparsity reached" in proc.stdout
    expected = Pruner("l1", MaskPlanner(normalizer="max")).prune(keras.models.load_model(saved_model),
                                                                  threshold=0.9)  # fmt: skip
    assert data["digest"] == expected.plan.digest


@pytest.mark.parametrize(("flag", "keep"), [("--flops", 0.5), ("--params", 0.3)])
def test_prune_to_a_cost_target_keeps_at_most_that_share_and_reports_what_it_kept(
    saved_model, tmp_path, flag, keep
):
    """`--flops`/`--params`: the least pruning within the budget (the engine's `target=`), the
    share kept and the sparsity it took in the report."""
    out, report = tmp_path / "small.keras", tmp_path / "report.json"
    proc = slimray("prune", str(saved_model), flag, str(keep), "--scope", "global", "--output", str(out),
                   "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    metric = flag.removeprefix("--")
    assert (data["sparsity"], data["target"]) == (None, {metric: keep})
    assert keep - 0.05 <= data["kept"][metric] <= keep  # within the budget, and not far below it
    assert data["kept"][metric] == pytest.approx(data[f"{metric}_after"] / data[f"{metric}_before"], abs=1e-6)
    assert f"{metric} target {keep} (kept {data['kept'][metric]:.3f}" in proc.stdout.replace("\n", "")


def _flags(**overrides) -> argparse.Namespace:
    return argparse.Namespace(**{"criterion": "l1", "scope": "local", "min_channels": 1, "round_to": 1,
                                 "normalizer": "mean", **overrides})  # fmt: skip


def test_weight_criteria_come_from_the_registry():
    assert weight_criteria() == [n for n in criteria.names() if not criteria.lookup(n).needs_data]
    assert {"l1", "l2", "bn_scale", "random"} <= set(weight_criteria())
    assert not {"taylor", "apoz"} & set(weight_criteria())


def test_a_data_criterion_is_refused_listing_the_registrys_weight_criteria():
    with pytest.raises(CliError, match="taylor scores activations and needs data") as err:
        criterion_and_planner(_flags(criterion="taylor"))
    assert str(err.value).endswith(", ".join(weight_criteria()))


def test_an_unknown_criterion_is_refused_listing_every_registered_one():
    with pytest.raises(CliError, match="'l7'") as err:
        criterion_and_planner(_flags(criterion="l7"))
    assert all(name in str(err.value) for name in criteria.names())
