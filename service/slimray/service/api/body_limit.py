"""The request body limit, enforced by the app itself (issue 23 L3): FastAPI's `max_body_size`
exists only in recent releases and older ones ignore the argument, so the 413 must not rest on it.
A declared Content-Length over the limit is refused before the body is read; a chunked body is
counted as it arrives and refused once it passes the limit."""

from __future__ import annotations

from fastapi import HTTPException  # FastAPI re-raises its own from a body read (others: 400)
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> str:
    return f"the request body exceeds {limit} bytes (max_body_bytes)"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Pure ASGI middleware: at most `limit` bytes of request body reach the app, else 413."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            await JSONResponse({"detail": _too_large(self.limit)}, status_code=413)(scope, receive, send)
            return
        await self.app(scope, self._counted(receive), send)

    def _counted(self, receive: Receive) -> Receive:
        """`receive` that raises a 413 HTTPException (FastAPI answers it) past the limit."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, detail=_too_large(self.limit))
            return message

        return counted
