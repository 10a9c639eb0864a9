"""`slimray up` / `slimray down`: a long-lived local Ray whose worker processes start with
TensorFlow imported and are prestarted between jobs (`slimray.runtime.warm`); `slimray run`
joins it while it is up, as `ray start` users expect of `ray.init()`, but by its record only."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from slimray.cli.entry import CliError
from slimray.cli.render import console
from slimray.cli.spec import read_spec
from slimray.core.envvars import RAY_AUTH_MODE, RAY_AUTH_TOKEN, SESSION_DIR
from slimray.runtime.preload import warm_system_config
from slimray.service.localray import LocalRay, LocalRayError, answers, private_secret
from slimray.service.ports import free_ports

RECORD = "session.json"


def session_dir() -> Path:
    return Path(os.environ.get(SESSION_DIR) or Path.home() / ".slimray" / "session")


@dataclass(frozen=True)
class Session:
    """A local session's record: its Ray (GCS address, job server URL, process group, log)."""

    gcs: str
    dashboard: str
    pgid: int
    log: str

    def head(self, token: str) -> LocalRay:
        return LocalRay(self.dashboard, token, self.pgid, Path(self.log))

    @staticmethod
    def token(folder: Path) -> str:
        return private_secret(folder / "ray_token")

    @classmethod
    def load(cls, folder: Path) -> Session | None:
        """The recorded session if its Ray still answers, else None (a stale record is removed)."""
        path = folder / RECORD
        try:
            session = cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:
            raise CliError(f"{path} is not a session record ({err}); remove that file") from err
        if answers(session.dashboard, cls.token(folder)):
            return session
        path.unlink(missing_ok=True)
        return None

    def join_env(self, folder: Path) -> str:
        """Set this process up to join the session's token-auth Ray (before Ray is imported: it
        reads its token once); returns the GCS address."""
        _auth_env(self.token(folder))
        return self.gcs


def _auth_env(token: str) -> None:
    os.environ[RAY_AUTH_MODE], os.environ[RAY_AUTH_TOKEN] = "token", token


def _keep_warm(gcs: str, like: str | None, workers: int) -> int:
    """Start the keeper and prestart one job's processes (the job `like`, else a default job with
    `workers` workers); returns how many registered."""
    import ray  # lazy, as every Ray import here: after the token is in the environment

    from slimray.runtime.warm import default_job, keep_warm  # lazy: Ray

    spec = read_spec(like) if like else default_job(workers)
    ray.init(address=gcs, log_to_driver=False)
    try:
        return keep_warm(spec)
    finally:
        ray.shutdown()


def _settled(gcs: str) -> int:
    """Wait for the keeper's refills in progress; the idle warm processes then."""
    import ray  # lazy: after the token is in the environment

    from slimray.runtime.warm import find_keeper  # lazy with Ray

    ray.init(address=gcs, log_to_driver=False)
    try:
        keeper = find_keeper()
        return ray.get(keeper.settled.remote()).idle if keeper is not None else 0
    finally:
        ray.shutdown()


def up(args: argparse.Namespace) -> int:
    """Start the session (or say it is up): Ray with TensorFlow preloaded, warm processes ready."""
    folder = session_dir()
    running = Session.load(folder)
    if running is not None:
        idle = _settled(running.join_env(folder))
        console.print(f"a slimray session is already up: Ray at {running.gcs}, {idle} warm worker "
                      "processes idle (`slimray down` stops it)")  # fmt: skip
        return 0
    gcs, dash = free_ports(2)
    token = Session.token(folder)
    _auth_env(token)  # before Ray is imported: it reads its token once
    try:
        head = LocalRay.start(f"http://127.0.0.1:{dash}", token, args.num_cpus, gcs,
                              system_config=warm_system_config())  # fmt: skip
    except LocalRayError as err:
        raise CliError(f"could not start the session's Ray: {err}") from err
    session = Session(f"127.0.0.1:{gcs}", head.address, head.pgid, str(head.log))
    (folder / RECORD).write_text(json.dumps(asdict(session)))
    try:
        ready = _keep_warm(session.join_env(folder), args.like, args.workers)
    except Exception:
        head.stop(state_dir=None)
        (folder / RECORD).unlink(missing_ok=True)
        raise
    console.print(f"slimray session up: Ray at {session.gcs}, {ready} warm worker processes; "
                  "`slimray run` uses it, `slimray down` stops it")  # fmt: skip
    return 0


def down(args: argparse.Namespace) -> int:
    """Stop the session's Ray (its process group) and remove its record."""
    folder = session_dir()
    session = Session.load(folder)
    if session is None:
        console.print("no slimray session is up")
        return 0
    session.head(Session.token(folder)).stop()
    (folder / RECORD).unlink(missing_ok=True)
    console.print(f"slimray session down (Ray at {session.gcs} stopped)")
    return 0


def session_address(embedded: bool) -> str | None:
    """The session's GCS address for `slimray run` (its token set), None without one or `embedded`."""
    if embedded:
        return None
    folder = session_dir()
    session = Session.load(folder)
    if session is None:
        return None
    console.print(f"on the local slimray session (Ray at {session.gcs}); --embedded starts a Ray of its own")
    return session.join_env(folder)
