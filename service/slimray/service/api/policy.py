"""What a submitted spec may touch and ask for: files only under the configured roots (symlinks
resolved), URIs only under allowed prefixes (segment by segment), model functions only public
ones defined in allowed modules, resources within the service's limits; output to runs_root."""

from __future__ import annotations

import ast
import importlib.machinery
import os
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from slimray.core.errors import OutputLocationError
from slimray.core.spec import JobSpec, OutputSpec, is_uri
from slimray.core.uris import uri_parts_problem
from slimray.service.settings import JobLimits, Settings

Problem = tuple[tuple[str, ...], str]


class PolicyError(ValueError):
    """Every field of a spec the service will not run, each with the reason (a 422 naming them)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(loc)}: {msg}" for loc, msg in problems))


def problem_of(error: OutputLocationError) -> Problem:
    """A shared error type as one of the policy's problems: its field and its message."""
    return error.field, str(error)


# ------------------------------------------------------------------ local paths


def _escapes(resolved: Path, roots: list[Path]) -> bool:
    return not any(resolved.is_relative_to(root.resolve()) for root in roots)


def _escaping_entry(directory: Path, roots: list[Path]) -> Path | None:
    """The first entry under `directory` whose real path leaves the roots (symlinks), if any."""
    for parent, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            entry = Path(parent) / name
            if _escapes(entry.resolve(), roots):
                return entry
    return None


def _inside(path: str, roots: list[Path], field: str) -> tuple[str | None, str | None]:
    """(resolved path, None) if allowed, else (None, reason)."""
    if ".." in PurePosixPath(path).parts:
        return None, f"'..' is not allowed in {field} (got {path!r})"
    if not roots:
        return None, f"this service accepts no local files for {field} (got {path!r})"
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if _escapes(resolved, roots):
        allowed = ", ".join(str(r) for r in roots)
        return None, f"{path!r} is outside the allowed roots ({allowed})"
    if resolved.is_dir():
        entry = _escaping_entry(resolved, roots)
        if entry is not None:
            return None, f"{path!r} holds {str(entry)!r}, a link to outside the allowed roots"
    return str(resolved), None


# ------------------------------------------------------------------ URIs


def _segments(path: str) -> list[str] | None:
    """Path segments of a URI path, or None if any is '.' or '..' (also percent-encoded)."""
    parts = [p for p in unquote(path).split("/") if p]
    return None if any(p in (".", "..") for p in parts) else parts


def _under(uri: str, prefix: str) -> bool:
    """Same scheme, same bucket/host exactly, and the path under the prefix's path by segments."""
    try:
        got, allowed = urlsplit(uri), urlsplit(prefix)
    except ValueError:
        return False
    if (got.scheme, got.netloc) != (allowed.scheme, allowed.netloc):
        return False
    got_parts, allowed_parts = _segments(got.path), _segments(allowed.path) or []
    return got_parts is not None and got_parts[: len(allowed_parts)] == allowed_parts


def _uri_problem(uri: str, settings: Settings) -> str | None:
    try:
        parts = urlsplit(uri)
    except ValueError as err:
        return f"not a valid URI ({err}): {uri!r}"
    if _segments(parts.path) is None:
        return f"'.' and '..' segments are not allowed in URIs (got {uri!r})"
    carried = uri_parts_problem(uri)  # the spec refuses these too; an allowlist never admits them
    if carried:
        return carried
    if any(_under(uri, p) for p in settings.allowed_uri_prefixes):
        return None
    return f"URI {uri!r} is not under an allowed prefix ({settings.allowed_uri_prefixes or 'none'})"


# ------------------------------------------------------------------ model functions


def _module_source(module: str) -> str | None:
    """The module's Python source, found on sys.path without importing anything."""
    search, spec = None, None
    parts = module.split(".")
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
    if spec is None or not (spec.origin or "").endswith(".py"):
        return None
    return Path(spec.origin).read_text()


def _bound_names(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    """Top-level statements binding each name (defs, imports, assignments)."""
    bound: dict[str, list[ast.stmt]] = {}
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        for name in names:
            bound.setdefault(name, []).append(node)
    return bound


def function_problem(source: str, allowed_modules: list[str]) -> str | None:
    """Why `module:function` may not be called, or None: the module must be allowed, and the
    function public and defined by a plain `def` in it (not imported, not reassigned)."""
    module, _, name = source.partition(":")
    if module not in allowed_modules:
        return f"module {module!r} is not in allowed_model_modules"
    if not name.isidentifier() or name.startswith("_"):
        return f"{name!r} is not a public function name"
    text = _module_source(module)
    if text is None:
        return f"module {module!r} has no Python source the service can read"
    try:
        bound = _bound_names(ast.parse(text))
    except SyntaxError as err:
        return f"module {module!r} does not parse: {err}"
    nodes = bound.get(name, [])
    if len(nodes) != 1 or not isinstance(nodes[0], ast.FunctionDef):
        return f"{name!r} is not a function defined (once, by def) in {module!r}"
    return None


# ------------------------------------------------------------------ limits


FLOAT32_BYTES = 4


def _elements(shape: tuple[int, ...] | None) -> int:
    elements = 1
    for dim in shape or ():
        elements *= dim
    return elements


def _field_checks(spec: JobSpec, limits: JobLimits) -> list[tuple[tuple[str, ...], int | float, int | float]]:
    """(field, value, limit) of each field with a limit of its own."""
    return [
        (("scaling", "num_workers"), spec.scaling.max_workers, limits.max_workers),  # a range: its max
        (("scaling", "cpus_per_worker"), spec.scaling.cpus_per_worker, limits.max_cpus_per_worker),
        (("scaling", "gpus_per_worker"), spec.scaling.gpus_per_worker, limits.max_gpus_per_worker),
        (("train", "steps"), spec.train.steps or 0, limits.max_steps),
        (("train", "epochs"), spec.train.epochs or 0, limits.max_epochs),
        (("train", "batch_size"), spec.train.batch_size, limits.max_batch_size),
        (("data", "synthetic", "num_classes"), spec.data.synthetic.num_classes, limits.max_classes),
        (("data", "synthetic", "samples"), spec.data.synthetic.samples, limits.max_synthetic_samples),
        (("data", "shape"), _elements(spec.data.shape), limits.max_sample_elements),
        (("data", "synthetic", "shape"), _elements(spec.data.synthetic.shape), limits.max_sample_elements),
    ]


def _sample_elements(spec: JobSpec) -> int | None:
    """Elements of one sample as the spec declares them (None: a built-in or a file's own shape)."""
    if spec.data.shape:
        return _elements(spec.data.shape)
    if spec.data.source == "synthetic":
        return _elements(spec.data.synthetic.shape)
    return None


def _synthetic_bytes_problem(spec: JobSpec, limits: JobLimits) -> str | None:
    synthetic = spec.data.synthetic
    rows = synthetic.samples + synthetic.num_classes  # the samples and one pattern per class
    elements = _elements(synthetic.shape)
    size = rows * elements * FLOAT32_BYTES
    if spec.data.source != "synthetic" or size <= limits.max_synthetic_bytes:
        return None
    return (f"(samples {synthetic.samples} + num_classes {synthetic.num_classes}) x {elements} elements "
            f"(shape {list(synthetic.shape)}) x 4 bytes = {size} bytes exceeds this service's limit of "
            f"{limits.max_synthetic_bytes} (max_synthetic_bytes)")  # fmt: skip


def _batch_bytes_problem(spec: JobSpec, limits: JobLimits) -> str | None:
    elements = _sample_elements(spec)
    size = spec.train.batch_size * (elements or 0) * FLOAT32_BYTES
    if size <= limits.max_batch_bytes:
        return None
    return (f"batch_size {spec.train.batch_size} x {elements} elements per sample x 4 bytes = "
            f"{size} bytes per batch exceeds this service's limit of {limits.max_batch_bytes} "
            "(max_batch_bytes)")  # fmt: skip


def _byte_problems(spec: JobSpec, limits: JobLimits) -> list[Problem]:
    """Products the single-field limits miss (issue 23 M5): 1,000,000 samples of 1024x1024x4
    passed every field's limit and asked the driver for 16 TiB."""
    found = [(("data", "synthetic"), _synthetic_bytes_problem(spec, limits)),
             (("train", "batch_size"), _batch_bytes_problem(spec, limits))]  # fmt: skip
    return [(loc, problem) for loc, problem in found if problem]


def _restart_problems(spec: JobSpec, limits: JobLimits) -> list[Problem]:
    """Restarts are bounded unless the operator allows unlimited ones (max_failures -1)."""
    asked, limit = spec.failure.max_failures, limits.max_failures
    if limit == -1 or 0 <= asked <= limit:
        return []
    shown = "-1 (unlimited restarts)" if asked == -1 else str(asked)
    return [(("failure", "max_failures"), f"{shown} exceeds this service's limit of {limit} (max_failures)")]


def limit_problems(spec: JobSpec, limits: JobLimits) -> list[Problem]:
    """Every field beyond this service's `JobLimits`, each with its value and the limit."""
    problems = [
        (loc, f"{value} exceeds this service's limit of {limit}")
        for loc, value, limit in _field_checks(spec, limits)
        if value > limit
    ]
    return problems + _byte_problems(spec, limits) + _restart_problems(spec, limits)


# ------------------------------------------------------------------ the whole spec


def run_location(settings: Settings, job_id: str) -> str:
    """The job's run directory under runs_root: a URI joined by '/', or a resolved local path."""
    root = str(settings.runs_root)
    if is_uri(root):
        return f"{root.rstrip('/')}/{job_id}"
    return str((Path(root.removeprefix("file://")) / job_id).resolve())


def output_location_error(settings: Settings, cluster_nodes: int | None) -> OutputLocationError | None:
    """A local runs_root serves one node, or every node that mounts it (runs_shared): the spec's
    own output rule, applied to where this service puts runs, with the operator's remedy."""
    output = OutputSpec(dir=str(settings.runs_root), shared=settings.runs_shared)
    problem = output.cluster_problem(cluster_nodes)
    if problem is None:
        return None
    remedy = ("The operator must set SLIMRAY_RUNS_ROOT to an object-store URI (e.g. s3://bucket/runs) or, "
              "if every node mounts it, SLIMRAY_RUNS_SHARED=true (the Helm chart: objectStore.*, or its "
              "ReadWriteMany runs claim)")  # fmt: skip
    return OutputLocationError(f"this service's runs_root: {problem}. {remedy}")


def output_problems(settings: Settings, cluster_nodes: int | None) -> list[Problem]:
    """The output location's problem (the driver raises the same OutputLocationError), if any."""
    error = output_location_error(settings, cluster_nodes)
    return [] if error is None else [problem_of(error)]


def _data_source(source: str, settings: Settings) -> tuple[str | None, str | None]:
    """(the source as the job reads it, None) or (None, why not): a URI under an allowed
    prefix, or a file under the data roots (resolved)."""
    try:
        scheme = urlsplit(source).scheme
    except ValueError:
        scheme = "invalid"
    if scheme not in ("", "file"):
        reason = _uri_problem(source, settings)
        return (None, reason) if reason else (source, None)
    local = urlsplit(source).path if source.startswith("file:") else source
    return _inside(local, settings.data_roots, "data.source")


def _model_source(kind: str, source: str, settings: Settings) -> tuple[str | None, str | None]:
    """(the source as the job loads it, None) or (None, why not): a URI under an allowed
    prefix, a .keras file under the model roots (resolved), or an allowed function."""
    if kind == "file" and is_uri(source):
        reason = _uri_problem(source, settings)
    elif kind == "file":
        return _inside(source, settings.model_roots, "model.source")
    elif kind == "function":
        reason = function_problem(source, settings.allowed_model_modules)
    else:
        reason = None
    return (None, reason) if reason else (source, None)


def enforce(spec: JobSpec, settings: Settings, job_id: str, cluster_nodes: int | None = None) -> JobSpec:
    """The spec as the service will run it, or PolicyError naming each offending field.
    `cluster_nodes`: alive Ray nodes at the last probe (None: not known yet)."""
    problems: list[Problem] = limit_problems(spec, settings.limits) + output_problems(settings, cluster_nodes)
    data, model = spec.data, spec.model
    if data.kind == "file":
        source, reason = _data_source(data.source, settings)
        if reason:
            problems.append((("data", "source"), reason))
        data = data.model_copy(update={"source": source or data.source})
    source, reason = _model_source(model.kind, model.source, settings)
    if reason:
        problems.append((("model", "source"), reason))
    model = model.model_copy(update={"source": source or model.source})
    if problems:
        raise PolicyError(problems)
    output = spec.output.model_copy(update={"dir": run_location(settings, job_id),
                                            "shared": settings.runs_shared})  # fmt: skip
    return spec.model_copy(update={"data": data, "model": model, "output": output})
