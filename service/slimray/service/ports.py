"""Free loopback ports for servers this process is about to start (a local Ray head, a test's
service): each one distinct, so two components never race for the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Collection

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_ports(count: int, exclude: Collection[int] = ()) -> list[int]:
    """`count` free loopback ports, none in `exclude` or handed out before by this process. The
    sockets stay bound until all are picked, so the kernel cannot return one port twice."""
    with _lock, contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in _handed_out and port not in exclude:
                ports.append(port)
        _handed_out.update(ports)
        return ports


def free_port() -> int:
    """One port from `free_ports`."""
    return free_ports(1)[0]
