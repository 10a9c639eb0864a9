"""What a submitted spec may touch: files only under the configured roots, URIs only under
allowed prefixes, model-building functions only from allowed modules; output goes to runs_root."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from slimray.settings import Settings
from slimray.spec import JobSpec


class PolicyError(ValueError):
    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(loc)}: {msg}" for loc, msg in problems))


def _inside(path: str, roots: list[Path], field: str) -> tuple[str | None, str | None]:
    """(resolved path, None) if allowed, else (None, reason)."""
    if ".." in PurePosixPath(path).parts:
        return None, f"'..' is not allowed in {field} (got {path!r})"
    if not roots:
        return None, f"this service accepts no local files for {field} (got {path!r})"
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return str(resolved), None
    allowed = ", ".join(str(r) for r in roots)
    return None, f"{path!r} is outside the allowed roots ({allowed})"


def _uri_allowed(uri: str, settings: Settings) -> str | None:
    if any(uri.startswith(p) for p in settings.allowed_uri_prefixes):
        return None
    return f"URI {uri!r} is not under an allowed prefix ({settings.allowed_uri_prefixes or 'none'})"


def enforce(spec: JobSpec, settings: Settings, job_id: str) -> JobSpec:
    """The spec as the service will run it, or PolicyError naming each offending field."""
    problems: list[tuple[tuple[str, ...], str]] = []
    data, model = spec.data, spec.model
    if data.kind == "file":
        if urlparse(data.source).scheme:
            reason = _uri_allowed(data.source, settings)
            if reason:
                problems.append((("data", "source"), reason))
        else:
            resolved, reason = _inside(data.source, settings.data_roots, "data.source")
            if reason:
                problems.append((("data", "source"), reason))
            else:
                data = data.model_copy(update={"source": resolved})
    if model.kind == "file":
        resolved, reason = _inside(model.source, settings.model_roots, "model.source")
        if reason:
            problems.append((("model", "source"), reason))
        else:
            model = model.model_copy(update={"source": resolved})
    elif model.kind == "function":
        module = model.source.partition(":")[0]
        if module not in settings.allowed_model_modules:
            problems.append((("model", "source"), f"module {module!r} is not in allowed_model_modules"))
    if problems:
        raise PolicyError(problems)
    output = spec.output.model_copy(update={"dir": str((settings.runs_root / job_id).resolve())})
    return spec.model_copy(update={"data": data, "model": model, "output": output})
