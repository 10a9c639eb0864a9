"""What the chart's `settings` values must be, derived from slimray.service.settings.Settings: every field
the chart does not decide itself, in camelCase, typed and bounded as the field is."""

from __future__ import annotations

from typing import Any

from slimray.service.settings import JobLimits, Settings

# decided by the chart (its storage mode, Service and RayCluster names, ray.warm) or taken from Secrets
CHART_DECIDED = {"api_token", "metrics_token", "ray_token", "db_path", "runs_root", "runs_shared",
                 "ray_address", "service_url", "driver_python", "keep_warm"}  # fmt: skip
_KEEP = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _field_schema(prop: dict[str, Any]) -> dict[str, Any]:
    out = {k: prop[k] for k in _KEEP if k in prop}
    if prop.get("type") == "array":
        out["items"] = {"type": prop["items"]["type"]}
    return out


def _object_schema(model: type, skip: set[str] = frozenset()) -> dict[str, Any]:
    props = model.model_json_schema()["properties"]
    return {"type": "object", "additionalProperties": False,
            "properties": {camel(n): _field_schema(props[n]) for n in model.model_fields
                           if n not in skip and n != "limits"}}  # fmt: skip


def settings_values_schema() -> dict[str, Any]:
    """The JSON schema of the chart's `settings` value."""
    schema = _object_schema(Settings, CHART_DECIDED)
    schema["properties"]["limits"] = _object_schema(JobLimits)
    return schema


def settings_defaults() -> dict[str, Any]:
    """Settings's defaults for the fields the values set, keyed as values.yaml keys them."""
    defaults = Settings.model_construct().model_dump(mode="json")
    out = {camel(k): v for k, v in defaults.items() if k not in CHART_DECIDED and k != "limits"}
    out["limits"] = {camel(k): v for k, v in JobLimits().model_dump(mode="json").items()}
    return out
