"""``python -m node.testnet up|status|stop|clean``: see :mod:`node.testnet.cluster`."""

import sys

from node.testnet.cluster import main

sys.exit(main())
