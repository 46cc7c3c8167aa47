"""Run geoingest as ``python -m geoingest``."""

import sys

from geoingest.cli import main

sys.exit(main())
