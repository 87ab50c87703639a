"""``python -m sitsformer``: the command-line tool (the same as ``sitsformer``)."""

import sys

from sitsformer.cli import main

sys.exit(main())
