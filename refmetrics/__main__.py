"""``python -m refmetrics`` is the ``refmetrics`` command."""

import sys

from .cli import main

sys.exit(main())
