"""Free ports: distinct within a call, across calls, and from the ports a caller already holds
(CI once saw `ray start` refuse a runtime-env agent port equal to the GCS port)."""

from __future__ import annotations

import socket

from slimray.service import ports
from slimray.service.ports import free_port, free_ports


def test_ports_are_distinct_within_and_across_calls():
    picked = free_ports(40) + [free_port() for _ in range(40)]
    assert len(set(picked)) == len(picked) == 80


class _ReusingKernel:
    """A socket whose kernel hands out the ports of `sequence` in order, repeats included."""

    sequence: list[int] = []

    def __init__(self, *args):
        self.port = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def bind(self, address):
        self.port = _ReusingKernel.sequence.pop(0)

    def getsockname(self):
        return ("127.0.0.1", self.port)


def test_a_port_the_kernel_repeats_or_the_caller_holds_is_skipped(monkeypatch):
    held = free_port()
    _ReusingKernel.sequence = [6380, held, 6380, 61001, 61001, 61002]
    monkeypatch.setattr(socket, "socket", _ReusingKernel)
    ports._handed_out.discard(61001)
    ports._handed_out.discard(61002)
    assert free_ports(1, exclude={6380}) == [61001]
    assert free_ports(1, exclude={6380}) == [61002]
