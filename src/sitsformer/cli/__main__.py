import sys

from sitsformer.cli import main

sys.exit(main())
