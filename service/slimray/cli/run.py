"""`slimray run`: a job spec trained and pruned on Ray from this process (embedded, the `slimray up`
session, or --address).
Imported only when chosen (slimray.cli.entry), so the runtime (TensorFlow, Ray) loads at the top."""

from __future__ import annotations

import argparse

from slimray.cli.entry import CliError
from slimray.cli.render import RunProgress, console, print_run_summary
from slimray.cli.session import session_address
from slimray.cli.spec import read_spec
from slimray.core.jobstate import JobState


def run(args: argparse.Namespace) -> int:
    """Run the job with live progress, print its summary; exit 1 if it did not succeed."""
    spec = read_spec(args.spec)
    address = args.address or session_address(args.embedded)  # before Ray loads: it sets Ray's token
    from slimray.core.storage import StorageError  # lazy: loads Ray (pyarrow), which reads its token once
    from slimray.runtime.embedded_ray import RayStartError  # lazy: the same
    from slimray.runtime.trainer import RunDirectoryExists, run_job  # lazy: the same

    try:
        result = run_job(spec, address=address, overwrite=args.overwrite,
                         on_event=RunProgress(args.quiet))  # fmt: skip
    except (RunDirectoryExists, RayStartError, StorageError, ValueError) as err:
        raise CliError(str(err)) from err
    result.report["run_dir"] = str(result.run_dir)
    print_run_summary(result.report)
    if result.state != JobState.SUCCEEDED:
        console.print(f"[bold red]job failed:[/] {result.error}", highlight=False)
        return 1
    return 0
