"""uvicorn as `slimray serve` runs it (issue 23 L1, L4): idle keep-alive connections outlive the
clients' pool expiry, slow request heads are cut off, and excess connections get 503."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx

from slimray.service.settings import get_settings
from tests.service_helpers import free_port, running_service

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def _settings(tmp_path, **overrides):
    return get_settings(api_token="t", db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                        ray_address=f"http://127.0.0.1:{free_port()}", **overrides)  # fmt: skip


@contextlib.contextmanager
def _socket(url: str):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        yield sock


def _status(sock: socket.socket) -> bytes:
    """The status line of one response read off the socket (b"" if the server closed it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))  # fmt: skip
    while len(rest) < length:
        rest += sock.recv(4096)
    return head.split(b"\r\n")[0]


def test_an_idle_keep_alive_connection_outlives_httpx_pool_expiry(tmp_path):
    settings = _settings(tmp_path)
    assert settings.keep_alive_seconds > 60  # above httpx's 5 s and nginx's 60 s
    with running_service(settings) as url, _socket(url) as sock:
        sock.sendall(REQUEST)
        assert _status(sock).endswith(b"200 OK")
        time.sleep(6)
        sock.sendall(REQUEST)
        assert _status(sock).endswith(b"200 OK")


def test_a_slow_request_head_is_cut_off_and_a_whole_one_is_served(tmp_path):
    with running_service(_settings(tmp_path, header_timeout_seconds=1)) as url:
        with _socket(url) as silent, _socket(url) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            time.sleep(0.6)
            slow.sendall(b"Host: t\r\n")  # bytes keep coming, the head never ends
            time.sleep(1.0)
            assert slow.recv(4096) == b""  # closed by the server
            assert silent.recv(4096) == b""
        with _socket(url) as sock:  # a request after an idle keep-alive gap is timed from its first byte
            sock.sendall(REQUEST)
            assert _status(sock).endswith(b"200 OK")
            time.sleep(1.5)
            sock.sendall(REQUEST)
            assert _status(sock).endswith(b"200 OK")


def test_connections_beyond_limit_concurrency_get_503(tmp_path):
    with running_service(_settings(tmp_path, limit_concurrency=2)) as url, _socket(url) as held:
        held.sendall(REQUEST)
        assert _status(held).endswith(b"200 OK")  # one connection open (kept alive), a second is over
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 503
    with running_service(_settings(tmp_path, limit_concurrency=2)) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
