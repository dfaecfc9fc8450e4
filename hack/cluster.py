#!/usr/bin/env python3
"""`make cluster-up` / `make cluster-down` / `make cluster-status`: the local test cluster.

A thin entry point for `python -m tests.substrate.cluster` (see tests/substrate/cluster.py),
runnable from anywhere: it puts the repository on sys.path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.substrate.cluster import main

if __name__ == "__main__":
    sys.exit(main())
