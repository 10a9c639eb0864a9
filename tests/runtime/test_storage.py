"""Run directories on a real S3 API (moto's server): a run is published with its report last,
found again, cleared; a store that cannot be reached fails with its name, not a traceback."""

from __future__ import annotations

import json

import pytest

from slimray.runtime.storage import REPORT_FILE, RunStore, StorageError
from tests.s3_helpers import moto_server


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
