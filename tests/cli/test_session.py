"""`slimray up`/`down`'s record: a stale one (its Ray gone) is dropped, a broken one named."""

from __future__ import annotations

import json

from tests.cli.helpers import ENV, slimray


def test_down_without_a_session_and_a_stale_record_are_no_session(tmp_path):
    env = {**ENV, "SLIMRAY_SESSION_DIR": str(tmp_path)}
    proc = slimray("down", env=env, timeout=60)
    assert proc.returncode == 0 and "no slimray session is up" in proc.stdout
    (tmp_path / "session.json").write_text(json.dumps({"gcs": "127.0.0.1:1", "dashboard": "http://127.0.0.1:1",
                                                        "pgid": 1, "log": "/nonexistent"}))  # fmt: skip
    proc = slimray("down", env=env, timeout=60)
    assert "no slimray session is up" in proc.stdout and not (tmp_path / "session.json").exists()


def test_a_broken_record_is_named(tmp_path):
    env = {**ENV, "SLIMRAY_SESSION_DIR": str(tmp_path)}
    (tmp_path / "session.json").write_text("{not json")
    proc = slimray("down", env=env, timeout=60)
    assert proc.returncode == 2 and "session.json is not a session record" in " ".join(proc.stdout.split())
