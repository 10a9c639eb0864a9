"""Where a run directory lives: a local path (one machine, or a mount shared by every node) or
a URI any pyarrow filesystem resolves (`s3://`, `gs://`, `abfs://`, ...). The driver builds the
run locally and publishes it; the report goes last, so a reader never sees a half-written run.
Credentials and endpoints come from each store's own environment (for S3: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), never from the spec."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"  # published last: its presence marks a complete run


class StorageError(RuntimeError):
    """The run's store cannot be reached or written; the message names the store, not a trace."""


def is_uri(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


@dataclass(frozen=True)
class RunStore:
    """A run directory: `location` as the spec gave it, with its pyarrow filesystem."""

    location: str
    fs: Any  # pyarrow.fs.FileSystem
    path: str  # inside fs

    @classmethod
    def of(cls, location: str) -> RunStore:
        import pyarrow.fs as pafs

        if not is_uri(location):
            local = location.removeprefix("file://")
            return cls(str(Path(local).resolve()), pafs.LocalFileSystem(), str(Path(local).resolve()))
        try:
            fs, path = pafs.FileSystem.from_uri(location)
        except Exception as err:  # unknown scheme, bad bucket name, ...
            raise StorageError(f"output.dir {location!r}: {type(err).__name__}: {err}") from None
        return cls(location.rstrip("/"), fs, path.rstrip("/"))

    @property
    def local(self) -> bool:
        return not is_uri(self.location)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except (OSError, ValueError) as err:
            raise StorageError(f"{what} {self.location!r} failed: {err}") from None

    def holds_a_run(self) -> bool:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return bool(self._call("listing", self.fs.get_file_info, selector))

    def clear(self) -> None:
        """Remove an old run (only once the new job has been checked and can start)."""
        import pyarrow.fs as pafs

        if self.local:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)
            Path(self.path).mkdir(parents=True, exist_ok=True)
            return
        info = self._call("checking", self.fs.get_file_info, self.path)
        if info.type != pafs.FileType.NotFound:
            self._call("clearing", lambda: self.fs.delete_dir_contents(self.path, missing_dir_ok=True))

    def staging(self) -> Path:
        """The local directory the driver writes the run into (the run itself when local)."""
        return Path(self.path) if self.local else Path(tempfile.mkdtemp(prefix="slimray-run-"))

    def publish(self, staging: Path) -> None:
        """Upload everything from `staging`, the report last (a no-op for a local run)."""
        if self.local:
            return
        import pyarrow.fs as pafs

        local = pafs.LocalFileSystem()
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        for path in sorted(files, key=lambda p: p.name == REPORT_FILE):  # the report last
            target = f"{self.path}/{path.relative_to(staging).as_posix()}"
            self._call("uploading to", pafs.copy_files, str(path), target, local, self.fs)

    def read_bytes(self, name: str) -> bytes:
        def read():
            with self.fs.open_input_stream(f"{self.path}/{name}") as f:
                return f.read()

        return self._call("reading", read)

    @property
    def ray_storage_path(self) -> str:
        """Ray Train's `storage_path`: the URI itself, so every process resolves the store from
        its own environment (no credentials travel inside pickled objects)."""
        return self.path if self.local else self.location
