"""How uvicorn runs the service (issue 23 L1, L4): keep-alive above common client and ingress idle
timeouts, a cap on open connections and tasks (beyond it: 503), and a header-read timeout that
uvicorn (h11) lacks: a connection must send a whole request head within `header_timeout_seconds`
of connecting or of its request's first byte, or it is closed."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from slimray.service.settings import Settings


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read timer: armed when a connection opens and when a
    request's first byte arrives on an idle one, cancelled once uvicorn has parsed the request head
    (it starts a new request cycle); firing, it closes the connection."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self._header_timer is None:
            self._arm_header_timer()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request head was parsed
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this header timeout."""
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout": seconds})


def uvicorn_config(app: Any, settings: Settings, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration for the service with these settings (`slimray serve` and the tests)."""
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.limit_concurrency,
    )  # fmt: skip
