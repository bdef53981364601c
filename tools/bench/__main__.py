"""Every benchmark one after the other, or those named, then the targets read against this run's figures.

`python -m tools.bench [--quick] [usage|loyalty|complaints|offers|startup|baselines ...]`: without names,
usage, loyalty, complaints, offers and startup (the loyalty, complaints and offers benchmarks each
measure the baselines they are read against themselves). The table of targets is also written to
`.data/bench/targets.json`, the figures without a fixed target to `.data/bench/figures.json`.
`--quick` is a smoke run: small counts, short phases.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict

from tools.bench import baselines, complaints, loyalty_ledger, offers, stack_startup, targets, usage_ingestion

BENCHMARKS = ("usage", "loyalty", "complaints", "offers", "startup", "baselines")
EVERY_RUN = ("usage", "loyalty", "complaints", "offers", "startup")
"""What a run without names runs."""
RESULTS = loyalty_ledger.REPOSITORY / ".data" / "bench" / "targets.json"
FIGURES = RESULTS.with_name("figures.json")


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmarks chosen, then prints and writes the targets."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", metavar="benchmark", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts and short phases")
    arguments = parser.parse_args(argv)
    chosen = arguments.benchmarks or list(EVERY_RUN)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    options = ["--quick"] if arguments.quick else []
    started = time.perf_counter()
    measured = targets.Measured(
        usage=usage_ingestion.bench(options) if "usage" in chosen else None,
        loyalty=loyalty_ledger.bench(options) if "loyalty" in chosen else None,
        complaints=complaints.bench(options) if "complaints" in chosen else None,
        offers=offers.bench(options) if "offers" in chosen else None,
        startup=stack_startup.bench(options) if "startup" in chosen else None,
    )
    if "baselines" in chosen:
        baselines.bench(options)
    print(f"benchmarks took {(time.perf_counter() - started) / 60:.1f} min")
    if not set(EVERY_RUN) & set(chosen):
        return 0  # the baselines alone are read against no target
    evaluated = targets.evaluate(measured)
    print(targets.table(evaluated))
    shown = targets.figures(measured)
    print(targets.figures_table(shown))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([asdict(target) for target in evaluated], indent=2))
    FIGURES.write_text(json.dumps([asdict(figure) for figure in shown], indent=2))
    print(f"written to {RESULTS.relative_to(loyalty_ledger.REPOSITORY)} and {FIGURES.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
