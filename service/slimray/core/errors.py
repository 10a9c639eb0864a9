"""One error type and one message for each condition that the driver, the workers and the service
all report: a backend the cluster cannot run, an output location the cluster cannot share."""

from __future__ import annotations


class BackendUnavailableError(ValueError):
    """The job's `backend` cannot run here: unknown, or the cluster lacks what it needs."""

    field = ("backend",)

    def __init__(self, backend: str, problem: str):
        self.backend, self.problem = backend, problem
        super().__init__(backend_unavailable_message(backend, problem))


def backend_unavailable_message(backend: str, problem: str) -> str:
    """The one wording of a missing backend, wherever it is found (service, driver or worker)."""
    return f"backend {backend!r} cannot run on this Ray cluster: {problem}"


class OutputLocationError(ValueError):
    """`output.dir` cannot serve the Ray cluster (a local path on several nodes)."""

    field = ("output", "dir")

    def __init__(self, problem: str):
        self.problem = problem
        super().__init__(problem)
