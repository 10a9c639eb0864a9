"""Where a run directory lives: a local path (one machine, or a mount shared by every node) or
a URI any pyarrow filesystem resolves (`s3://`, `gs://`, `abfs://`, ...). The driver builds the
run locally and publishes it; the report goes last, so a reader never sees a half-written run.
Credentials and endpoints come from each store's own environment (for S3: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), never from the spec."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimray.core.envvars import UMASK as UMASK_ENV
from slimray.core.spec import is_uri

REPORT_FILE = "report.json"  # published last: its presence marks a complete run


class StorageError(RuntimeError):
    """The run's store cannot be reached or written; the message names the store, not a trace."""


# where each store's processes find credentials and endpoints (named in errors, never read here)
CREDENTIAL_HINTS = {
    "s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "abfs": "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
    "hdfs": "the Hadoop configuration (HADOOP_HOME, CLASSPATH)",
}


def store_error(field: str, location: str, what: str, err: BaseException) -> StorageError:
    """One line: the field, the store, what failed, the store's own reason, where to look."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    hint = CREDENTIAL_HINTS.get(location.partition("://")[0])
    tail = f" (check {hint})" if hint else ""
    return StorageError(f"{field} {location!r}: {what} failed: {reason}{tail}")


UMASK_FORM = re.compile(r"0{0,2}[0-7]{1,2}")  # group and other bits only: the owner keeps rw


def apply_umask(default: int | None = None) -> int | None:
    """Set this process's umask from SLIMRAY_UMASK (octal, e.g. 0007), else to `default` (None:
    keep it); every process that writes run files calls it first: the CLI, the driver, each Train
    worker. Never world-writable: the 'other' write bit is always masked."""
    value = os.environ.get(UMASK_ENV, "").strip()
    if value:
        if not UMASK_FORM.fullmatch(value):
            raise ValueError(f"{UMASK_ENV}={value!r} is not a umask of group and other bits such as "
                             "0007 or 0002 (the owner's bits are never masked)")  # fmt: skip
        mask = int(value, 8) | 0o002
    elif default is None:
        return None
    else:
        mask = default
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class RunStore:
    """A run directory: `location` as the spec gave it, with its pyarrow filesystem."""

    location: str
    fs: Any  # pyarrow.fs.FileSystem
    path: str  # inside fs

    @classmethod
    def of(cls, location: str) -> RunStore:
        # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
        import pyarrow.fs as pafs

        if not is_uri(location):
            local = location.removeprefix("file://")
            return cls(str(Path(local).resolve()), pafs.LocalFileSystem(), str(Path(local).resolve()))
        try:
            fs, path = pafs.FileSystem.from_uri(location)
        except Exception as err:  # unknown scheme, bad bucket name, ...
            raise store_error("output.dir", location, "opening the store", err) from None
        return cls(location.rstrip("/"), fs, path.rstrip("/"))

    @property
    def local(self) -> bool:
        return not is_uri(self.location)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except (OSError, ValueError) as err:
            raise store_error("output.dir", self.location, what, err) from None

    def holds_a_run(self) -> bool:
        # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return bool(self._call("listing the run", self.fs.get_file_info, selector))

    def clear(self) -> None:
        """Remove an old run (only once the new job has been checked and can start)."""
        # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
        import pyarrow.fs as pafs

        if self.local:
            shutil.rmtree(self.path, ignore_errors=True)
            Path(self.path).mkdir(parents=True, exist_ok=True)
            return
        info = self._call("checking the run", self.fs.get_file_info, self.path)
        if info.type != pafs.FileType.NotFound:
            self._call(
                "clearing the old run", lambda: self.fs.delete_dir_contents(self.path, missing_dir_ok=True)
            )

    def staging(self) -> Path:
        """The local directory the driver writes the run into (the run itself when local)."""
        return Path(self.path) if self.local else Path(tempfile.mkdtemp(prefix="slimray-run-"))

    def publish(self, staging: Path) -> None:
        """Upload everything from `staging`, the report last, then remove the staging copy (a
        no-op for a local run). If an upload fails the copy stays, and the error says where."""
        if self.local:
            return
        # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
        import pyarrow.fs as pafs

        local = pafs.LocalFileSystem()
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        try:
            for path in sorted(files, key=lambda p: p.name == REPORT_FILE):  # the report last
                target = f"{self.path}/{path.relative_to(staging).as_posix()}"
                self._call("uploading the run", pafs.copy_files, str(path), target, local, self.fs)
        except StorageError as err:
            raise StorageError(f"{err}; the run is kept at {staging}") from None
        shutil.rmtree(staging, ignore_errors=True)

    def read_bytes(self, name: str) -> bytes:
        def read():
            with self.fs.open_input_stream(f"{self.path}/{name}") as f:
                return f.read()

        return self._call("reading the run", read)

    @property
    def ray_storage_path(self) -> str:
        """Ray Train's `storage_path`: the URI itself, so every process resolves the store from
        its own environment (no credentials travel inside pickled objects)."""
        return self.path if self.local else self.location


def check_readable(location: str, field: str) -> None:
    """Fail early, with the store's name and reason, if a URI cannot be read (before Ray Data
    starts reading it, whose own failures come wrapped in task errors and thread noise)."""
    # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(location)
        info = fs.get_file_info(path)
    except (OSError, ValueError) as err:
        raise store_error(field, location, "reading", err) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{field} {location!r}: no such object or prefix in the store")


@contextlib.contextmanager
def local_copy(location: str, field: str) -> Iterator[Path]:
    """A local path for `location`: the path itself, or a temporary download of a URI (gone
    when the context ends). A store that fails is a StorageError naming `field` and the URI."""
    if not is_uri(location):
        yield Path(location.removeprefix("file://"))
        return
    # lazy: pyarrow.fs costs ~1 s; the CLI and the service import this module for errors and umask
    import pyarrow.fs as pafs

    with tempfile.TemporaryDirectory(prefix="slimray-fetch-") as tmp:
        target = Path(tmp) / Path(location.rstrip("/")).name
        try:
            fs, path = pafs.FileSystem.from_uri(location)
            pafs.copy_files(path, str(target), fs, pafs.LocalFileSystem())
        except (OSError, ValueError) as err:
            raise store_error(field, location, "fetching it", err) from None
        yield target
