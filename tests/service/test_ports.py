"""Free ports: distinct within a call, across calls, and from the ports a caller already holds
(CI once saw `ray start` refuse a runtime-env agent port equal to the GCS port), and outside the
kernel's ephemeral range (CI later saw a Ray agent's port answered by another process's socket)."""

from __future__ import annotations

import socket
from pathlib import Path

from slimray.service import ports
from slimray.service.ports import PORT_RANGE, free_port, free_ports


def test_ports_are_distinct_within_and_across_calls():
    picked = free_ports(40) + [free_port() for _ in range(40)]
    assert len(set(picked)) == len(picked) == 80


def test_ports_come_from_below_the_kernels_ephemeral_range_and_above_rays_worker_ports():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for port in free_ports(20):
        assert port in PORT_RANGE and not low <= port <= high and port > 19999


def test_a_port_another_server_holds_or_the_caller_excludes_is_skipped(monkeypatch):
    """Regression: a port picked from the ephemeral range could be bound by another process
    before its server started."""
    first = next(i for i in range(len(PORT_RANGE) - 2) if all(_usable(PORT_RANGE[i + k]) for k in range(3)))
    server = socket.socket()
    server.bind(("127.0.0.1", PORT_RANGE[first]))
    server.listen()
    try:
        monkeypatch.setattr(ports, "_first_index", lambda: first)
        assert free_ports(1, exclude={PORT_RANGE[first + 1]}) == [PORT_RANGE[first + 2]]
    finally:
        server.close()


def _usable(port: int) -> bool:
    """Free now and never handed out by this process."""
    if port in ports._handed_out:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
            return True
        except OSError:
            return False
