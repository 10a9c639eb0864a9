"""Free ports for servers this process is about to start (a local Ray head, a test's service):
each one distinct, so two components never race for the same port."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Collection

# Below the kernel's ephemeral range (32768-60999 by default: every bind to port 0 and every
# outgoing connection take their ports there, so one picked there can be taken by another process
# before its server binds it: CI saw a Ray agent's port answered by a stranger) and above Ray's
# worker ports (10002-19999). Only ports chosen on purpose land here.
PORT_RANGE = range(20000, 32768)

_handed_out: set[int] = set()
_lock = threading.Lock()


def _first_index() -> int:
    """Where a search starts: at random, so two processes picking at once rarely meet."""
    return random.SystemRandom().randrange(len(PORT_RANGE))


def free_ports(count: int, exclude: Collection[int] = ()) -> list[int]:
    """`count` free ports from PORT_RANGE, consecutive free ones from a random start, none in
    `exclude` or handed out before by this process, each bindable on every interface (a server on
    any address holds it). The sockets stay bound until all are picked."""
    with _lock, contextlib.ExitStack() as stack:
        ports: list[int] = []
        first = _first_index()
        for offset in range(len(PORT_RANGE)):
            if len(ports) == count:
                break
            port = PORT_RANGE[(first + offset) % len(PORT_RANGE)]
            if port in _handed_out or port in exclude:
                continue
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("", port))
            except OSError:
                continue
            ports.append(port)
        if len(ports) < count:
            raise OSError(f"fewer than {count} free ports in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")
        _handed_out.update(ports)
        return ports


def free_port() -> int:
    """One port from `free_ports`."""
    return free_ports(1)[0]
