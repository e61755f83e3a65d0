"""Entry point: `python -m devstack run|serve|s3`."""

import sys

from devstack.cli import main

sys.exit(main())
