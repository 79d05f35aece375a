"""`python -m circuitdsl` is `circ`."""

import sys

from circuitdsl.cli import main

sys.exit(main())
