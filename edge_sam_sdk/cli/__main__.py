"""``python -m edge_sam_sdk.cli``: the same as the ``edgesam`` command."""

import sys

from .main import main

sys.exit(main())
