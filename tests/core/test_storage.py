"""Run directories on a real S3 API (moto's server): a run is published with its report last,
found again, cleared; a `.keras` model loads from a URI; a store that cannot be reached, or
refuses missing credentials, fails the job with its name and where to look, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from slimray.core.storage import REPORT_FILE, RunStore, StorageError
from tests.s3_helpers import CREDENTIALS, moto_server


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as s3:
        s3.client().create_bucket(Bucket="runs")
        yield s3


def test_a_run_is_published_report_last_and_found_again(s3, tmp_path):
    store = RunStore.of("s3://runs/jobs/a")
    assert not store.holds_a_run()
    staging = store.staging()
    (staging / "saved_model").mkdir()
    (staging / "saved_model" / "saved_model.pb").write_bytes(b"pb")
    (staging / "model.keras").write_bytes(b"keras")
    (staging / REPORT_FILE).write_text(json.dumps({"state": "succeeded"}))
    store.publish(staging)
    assert s3.keys("runs", "jobs/a/") == ["jobs/a/model.keras", "jobs/a/report.json",
                                          "jobs/a/saved_model/saved_model.pb"]  # fmt: skip
    assert json.loads(store.read_bytes(REPORT_FILE)) == {"state": "succeeded"}
    assert store.holds_a_run() and RunStore.of("s3://runs/jobs/a/").holds_a_run()
    store.clear()
    # pyarrow keeps an empty directory marker ("jobs/a/"); no object of the old run is left
    assert not store.holds_a_run() and [k for k in s3.keys("runs", "jobs/a/") if not k.endswith("/")] == []


def test_the_report_is_uploaded_after_everything_else(s3, monkeypatch):
    import pyarrow.fs as pafs

    uploaded = []
    real = pafs.copy_files

    def recording(source, destination, *args, **kwargs):  # records the order of uploads
        uploaded.append(destination.rsplit("/", 1)[-1])
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(pafs, "copy_files", recording)
    store = RunStore.of("s3://runs/jobs/b")
    staging = store.staging()
    for name in ("report.json", "a.txt", "z.txt"):
        (staging / name).write_text(name)
    store.publish(staging)
    assert uploaded[-1] == "report.json" and sorted(uploaded) == ["a.txt", "report.json", "z.txt"]


def test_an_unreachable_store_fails_naming_it(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    store = RunStore.of("s3://runs/jobs/c")
    with pytest.raises(StorageError, match=r"s3://runs/jobs/c"):
        store.holds_a_run()


def test_a_local_run_is_its_own_staging(tmp_path):
    store = RunStore.of(str(tmp_path / "run"))
    assert store.local and store.staging() == tmp_path / "run"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    assert store.holds_a_run()
    store.clear()
    assert not store.holds_a_run() and (tmp_path / "run").is_dir()


def test_a_keras_model_is_loaded_from_a_uri(s3, tmp_path):
    import numpy as np

    from slimray.core.spec import ModelSpec
    from slimray.runtime.modeling import build_job_model
    from slimray.zoo.models import build_model

    model = build_model("seed_cnn", input_shape=(28, 28, 1), num_classes=10, conv1=4, conv2=8, fc=16)
    model.save(tmp_path / "m.keras")
    s3.client().upload_file(str(tmp_path / "m.keras"), "runs", "models/m.keras")
    loaded = build_job_model(ModelSpec(source="s3://runs/models/m.keras"), (28, 28, 1), 10)
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)
    with pytest.raises(StorageError, match=r"model.source 's3://runs/models/missing.keras'"):
        build_job_model(ModelSpec(source="s3://runs/models/missing.keras"), (28, 28, 1), 10)


def _run_cli(tmp_path, env, data: str, output: str) -> subprocess.CompletedProcess:
    model = {"source": "seed_cnn", "kwargs": {"conv1": 4, "conv2": 8, "fc": 16}}
    spec = {"name": "store-fails", "model": model,
            "data": {"source": data, "shape": [28, 28, 1]}, "train": {"steps": 4, "batch_size": 8},
            "prune": {"sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 2}},
            "scaling": {"num_workers": 1}, "output": {"dir": output}}  # fmt: skip
    (tmp_path / "job.yaml").write_text(json.dumps(spec))
    home = tmp_path / "home"  # no ~/.aws of the machine's user
    home.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env,
           "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "slimray.cli", "run", str(tmp_path / "job.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    return " ".join(proc.stdout.split())


def test_a_bad_endpoint_fails_the_job_naming_the_store(s3, tmp_path):
    nothing = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
    }
    text = _one_line_error(_run_cli(tmp_path, nothing, "mnist", "s3://runs/jobs/bad-endpoint"))
    assert "output.dir 's3://runs/jobs/bad-endpoint'" in text and "AWS_ENDPOINT_URL" in text


def test_missing_credentials_fail_the_job_naming_the_store(tmp_path):
    """moto with its IAM checks on refuses anonymous requests, as S3 does."""
    with moto_server(tmp_path, enforce_auth=True) as strict:
        no_keys = {
            k: v for k, v in strict.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        text = _one_line_error(_run_cli(tmp_path, no_keys, "mnist", "s3://runs/jobs/no-keys"))
    assert "output.dir 's3://runs/jobs/no-keys'" in text and "AWS_ACCESS_KEY_ID" in text


def test_data_from_an_unreachable_store_fails_naming_it(s3, tmp_path):
    nothing = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
    }
    text = _one_line_error(_run_cli(tmp_path, nothing, "s3://runs/data/train.parquet", str(tmp_path / "out")))
    assert "data.source 's3://runs/data/train.parquet'" in text
    assert not (tmp_path / "out").exists()  # nothing was started, nothing written


def test_a_missing_data_object_is_named(s3):
    from slimray.core.storage import check_readable

    with pytest.raises(StorageError, match=r"data.source 's3://runs/data/none.parquet': no such object"):
        check_readable("s3://runs/data/none.parquet", "data.source")


def test_slimray_umask_makes_run_files_group_writable_and_refuses_a_bad_value(tmp_path):
    """The image sets SLIMRAY_UMASK=0007: group 0 may write what any UID wrote (OpenShift)."""
    code = ("from slimray.core.storage import apply_umask; import os, sys; apply_umask(0o077); "
            "p = sys.argv[1]; open(p, 'w').close(); os.mkdir(p + '.d'); "
            "print(oct(os.stat(p).st_mode & 0o777), oct(os.stat(p + '.d').st_mode & 0o777))")  # fmt: skip

    def modes(**env):
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"f{len(env)}")],
                              capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
        return proc.returncode, proc.stdout.split(), proc.stderr

    assert modes(SLIMRAY_UMASK="0007")[:2] == (0, ["0o660", "0o770"])
    assert modes()[:2] == (0, ["0o600", "0o700"])  # the default the caller gives
    assert modes(SLIMRAY_UMASK="0000", X="1")[:2] == (0, ["0o664", "0o775"])  # never world-writable
    for bad in ("rw-", "0777", "8", "7777"):  # not octal, or masking the owner's own bits
        code_, _, err = modes(SLIMRAY_UMASK=bad, X="1", Y="2")
        assert code_ != 0 and f"SLIMRAY_UMASK={bad!r} is not a umask of group and other bits" in err
