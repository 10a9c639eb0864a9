"""`python -m slimray.cli`: the same program as the `slimray` command."""

import sys

from slimray.cli import main

sys.exit(main())
