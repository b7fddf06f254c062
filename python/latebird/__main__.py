"""`python -m latebird`: the `latebird` command line (see latebird.cli)."""

import sys

from .cli import main

sys.exit(main())
