"""`python -m optrepro`: see optrepro.cli."""

import sys

from optrepro.cli import main

sys.exit(main())
