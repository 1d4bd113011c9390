"""``python -m hwgrad.calibrate``: the validate and calibrate commands alone."""

import sys

from .cli import main

sys.exit(main())
