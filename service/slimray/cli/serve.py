"""`slimray serve`: the job service under uvicorn, with `--local` a Ray head started (or reused) here.
Imported only when chosen (slimray.cli.entry), so uvicorn and the service's app load at the top."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

import uvicorn
from pydantic import SecretStr

from slimray.cli.entry import CliError
from slimray.cli.render import console
from slimray.core.envvars import API_TOKEN, RAY_GCS_PORT
from slimray.core.storage import apply_umask
from slimray.runtime.preload import warm_system_config
from slimray.service.api.main import create_app
from slimray.service.localray import LocalRay, LocalRayError, answers, private_secret
from slimray.service.server import uvicorn_config
from slimray.service.settings import Settings, get_settings

DEFAULT_GCS_PORT = 6380


def service_token(settings: Settings) -> Settings:
    """The admin token: SLIMRAY_API_TOKEN, else one kept (mode 0600) in the state directory."""
    if settings.api_token is not None:
        return settings
    token_file = settings.db_path.parent / "token"
    token = private_secret(token_file)
    console.print(f"no {API_TOKEN} set: using the token in {token_file}")
    return settings.model_copy(update={"api_token": SecretStr(token)})


def gcs_port() -> int:
    """The local Ray head's GCS port: SLIMRAY_RAY_GCS_PORT, else 6380; a bad value names itself."""
    raw = os.environ.get(RAY_GCS_PORT, str(DEFAULT_GCS_PORT))
    try:
        return int(raw)
    except ValueError:
        raise CliError(f"{RAY_GCS_PORT} must be a port number. Received: {raw!r}") from None


def local_ray(settings: Settings, num_cpus: int | None) -> tuple[Settings, LocalRay | None]:
    """Reuse a Ray job server answering at ray_address (with our token), else start one;
    returns (settings with the Ray token, the head we started or None)."""
    token = (settings.ray_token.get_secret_value() if settings.ray_token
             else private_secret(settings.db_path.parent / "ray_token"))  # fmt: skip
    settings = settings.model_copy(update={"ray_token": SecretStr(token)})
    state_dir = settings.db_path.parent
    if answers(settings.ray_address, token):
        head = LocalRay.adopt(state_dir, settings.ray_address, token)
        console.print(f"using the Ray head at {settings.ray_address}" + (" (ours)" if head else ""))
        return settings, head
    try:
        head = LocalRay.start(settings.ray_address, token, num_cpus, gcs_port(),
                              system_config=warm_system_config())  # fmt: skip
    except LocalRayError as err:
        raise CliError(f"could not start a local Ray head: {err}") from err
    head.record(state_dir)
    console.print(f"started a local Ray head (token auth on, TensorFlow preloaded), job server at "
                  f"{settings.ray_address}")  # fmt: skip
    return settings, head


def service_settings(args: argparse.Namespace) -> Settings:
    """The service's settings with its token; `--local` drivers run this Python and report here."""
    # the store, run directories and logs are the service user's alone, unless SLIMRAY_UMASK
    # (the image: 0007) shares them with group 0
    try:
        apply_umask(0o077)
    except ValueError as err:
        raise CliError(str(err)) from err
    overrides: dict[str, Any] = {}
    if args.local:
        overrides["driver_python"] = sys.executable
        overrides["service_url"] = f"http://{args.host}:{args.port}"
    try:
        return service_token(get_settings(**overrides))
    except (ValueError, OSError) as err:  # bad settings; a state directory it cannot write
        raise CliError(str(err)) from err


def serve(args: argparse.Namespace) -> int:
    """Serve until stopped; a local Ray head this started is stopped on the way out."""
    settings, head = service_settings(args), None
    if args.local:
        settings, head = local_ray(settings, args.num_cpus)
        # uvicorn re-raises SIGTERM after its graceful shutdown: exit through `finally` instead
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        docs = " (docs at /docs)" if settings.api_docs else ""
        console.print(f"slimray service on http://{args.host}:{args.port}{docs}")
        config = uvicorn_config(create_app(settings), settings, args.host, args.port, args.log_level)
        uvicorn.Server(config).run()
    finally:
        if head is not None:
            console.print("stopping the local Ray head")
            head.stop(state_dir=settings.db_path.parent)
    return 0
