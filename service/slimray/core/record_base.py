"""The base every typed record shares (`records`, `startup`): one rule set, one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A record's common rules: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")
