"""``python -m xraybench.cli``: the same command line as ``xraybench``."""

import sys

from xraybench.cli import main

sys.exit(main())
