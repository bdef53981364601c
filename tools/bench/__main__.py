"""`python -m tools.bench [usage|loyalty]`: every benchmark one after the other, or the one named."""

import sys

from tools.bench import loyalty_ledger, usage_ingestion

BENCHMARKS = {"usage": usage_ingestion.main, "loyalty": loyalty_ledger.main}

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    sys.exit(max(BENCHMARKS[name]([]) for name in chosen))
