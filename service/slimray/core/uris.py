"""What a URI in a job spec may carry: scheme, bucket (host) and path, nothing else.

pyarrow's `FileSystem.from_uri` honours a query (`?endpoint_override=host:port&scheme=http`
sends the pod's signed requests to that host), and a port or userinfo names another endpoint or
identity than the bucket an allowlist admits (issue 23 M1). So a spec's URIs may not carry a
query, a fragment, userinfo or a port."""

from __future__ import annotations

import re


def uri_parts_problem(location: str) -> str | None:
    """Why `location`, if it is a URI (`scheme://...`), carries more than scheme, host and path;
    None when it does not (or is a plain path, which may hold any character)."""
    if "://" not in location:
        return None
    # split by hand, not urlsplit: it raises on some malformed hosts, which the policy refuses
    netloc = re.split(r"[/?#]", location.split("://", 1)[1], maxsplit=1)[0]
    host = netloc.rpartition("@")[2]
    found = [("a query ('?')", "?" in location), ("a fragment ('#')", "#" in location),
             ("userinfo ('user@')", "@" in netloc), ("a port (':port')", ":" in host)]  # fmt: skip
    carried = [name for name, present in found if present]
    if not carried:
        return None
    return (f"a URI here is scheme://bucket/path only; {location!r} carries {' and '.join(carried)}, "
            "which the object-store client would honour")  # fmt: skip


def plain_uri(location: str) -> str:
    """Pydantic validator: `location` unchanged, or ValueError naming what it carries."""
    problem = uri_parts_problem(location)
    if problem:
        raise ValueError(problem)
    return location
