"""``python -m rfq_theory`` runs the ``rfq`` command line."""

import sys

from .cli import main

sys.exit(main())
