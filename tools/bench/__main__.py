"""`python -m tools.bench`: every benchmark, one after the other."""

import sys

from tools.bench.usage_ingestion import main

if __name__ == "__main__":
    sys.exit(main())
