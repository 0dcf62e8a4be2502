"""``python -m bench.cli``: the ``ubench`` command (e.g. under ``accelerate launch -m bench.cli run BOARD``)."""

import sys

from bench.cli.main import main

sys.exit(main())
