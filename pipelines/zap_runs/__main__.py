"""Entry point: `python -m pipelines.zap_runs`."""

import sys

from .cli.main import main

sys.exit(main())
