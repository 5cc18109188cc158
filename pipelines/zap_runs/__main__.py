"""Entry point: `python -m pipelines.zap_runs`."""

import sys

from .cli import main

sys.exit(main())
