"""The field types every job-spec section shares: text without NUL, a path or plain URI, keyword
options of bounded depth and size, a dimension; and the strict (frozen, no extra keys) base."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from slimray.core.jsonsafe import deeper_than
from slimray.core.uris import plain_uri

MAX_NESTING = 8  # of builder kwargs and criterion configs: plain settings, not data
MAX_OPTIONS_BYTES = 16384  # the spec travels in an environment variable (128 KB at most)


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError(f"NUL characters are not allowed (got {text!r})")
    return text


def _plain_options(value: dict[str, Any]) -> dict[str, Any]:
    """Keyword options nested at most MAX_NESTING deep and at most MAX_OPTIONS_BYTES as JSON."""
    if deeper_than(value, MAX_NESTING):
        raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    size = len(json.dumps(value, default=str))
    if size > MAX_OPTIONS_BYTES:
        raise ValueError(f"{size} bytes as JSON; at most {MAX_OPTIONS_BYTES}")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Location = Annotated[str, AfterValidator(_no_nul), AfterValidator(plain_uri)]  # a path or a plain URI
Options = Annotated[dict[str, Any], AfterValidator(_plain_options)]
Dim = Annotated[int, Field(ge=1, le=2**20)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
