"""The targets a run is read against, each a ratio or a bound measured in that same run, and their table;
then the figures read without a fixed target (complaints, offers), shown as measured.

Nothing is asserted: each target is shown with its figure and marked met or not met (or not measured,
when the benchmark that measures it did not run); a figure without a target is only shown.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

from tools.bench.call_phases import DIRECT, GATEWAY, CallPhases
from tools.bench.complaints import ComplaintsRun
from tools.bench.idle_memory import IdleMemory
from tools.bench.loyalty_ledger import LoyaltyRun, Phase, PhaseRatios
from tools.bench.offers import OffersRun
from tools.bench.stack_startup import StackStart
from tools.bench.usage_ingestion import Figures
from tools.run import CHILDREN

CALLS = {"earn": "EarnPoints", "redeem": "RedeemPoints"}
"""The loyalty benchmark's operations by the method they call."""
HEADLINE_CONCURRENCY = 32
"""Calls in flight of the throughput targets."""
LATENCY_CONCURRENCY = 1
"""Calls in flight of the gateway's added latency."""


@dataclass(frozen=True)
class Measured:
    """What the benchmarks of one run measured; None for those that did not run."""

    loyalty: LoyaltyRun | None = None
    usage: Figures | None = None
    startup: list[StackStart] | None = None
    complaints: ComplaintsRun | None = None
    offers: OffersRun | None = None


@dataclass(frozen=True)
class Target:
    """One target and what the run measured for it."""

    what: str
    figure: str
    """The measured figure, or "not measured"."""
    bound: str
    met: bool | None
    """None when not measured."""


def evaluate(measured: Measured) -> list[Target]:
    """Every target with its figure from this run."""
    return [
        *_loyalty_targets(measured.loyalty),
        *_usage_targets(measured.usage),
        *_memory_targets(measured),
        *_startup_targets(measured.startup),
    ]


def table(targets: list[Target]) -> str:
    """The targets as a table, one a line."""
    width = max(len(t.what) for t in targets)
    lines = [
        "targets, each measured against figures of this same run on this machine",
        f"  {'target':{width}}  {'figure':>22}  {'bound':>20}  verdict",
    ]
    for t in targets:
        verdict = "not measured" if t.met is None else "met" if t.met else "NOT MET"
        lines.append(f"  {t.what:{width}}  {t.figure:>22}  {t.bound:>20}  {verdict}")
    met = sum(t.met is True for t in targets)
    measured = sum(t.met is not None for t in targets)
    lines.append(f"  {met} of {measured} measured targets met")
    return "\n".join(lines)


def _loyalty_targets(run: LoyaltyRun | None) -> Iterator[Target]:
    def phase(path: str, operation: str, accounts: str, concurrency: int) -> Phase | None:
        return run.phase(path, operation, accounts, concurrency) if run else None

    def ratios(found: Phase | None) -> PhaseRatios:
        return run.ratios(found) if run and found else PhaseRatios()

    at = f"{HEADLINE_CONCURRENCY} in flight"
    for operation, call in CALLS.items():
        direct = phase("direct", operation, "spread", HEADLINE_CONCURRENCY)
        yield _at_least(f"{call} direct, spread, {at}: throughput", ratios(direct).of_echo, 0.25, "{:.2f} of echo")
        yield _at_most(f"{call} direct, spread, {at}: p99", _p99(direct), 30, "{:.1f} ms")
    for operation, call in CALLS.items():
        gateway = phase("gateway", operation, "spread", HEADLINE_CONCURRENCY)
        of_hop = ratios(gateway).of_echo
        yield _at_least(f"{call} gateway, spread, {at}: throughput", of_hop, 0.4, "{:.2f} of echo+hop")
        yield _at_most(f"{call} gateway, spread, {at}: p99", _p99(gateway), 50, "{:.1f} ms")
    for operation, call in CALLS.items():
        gateway = phase("gateway", operation, "spread", HEADLINE_CONCURRENCY)
        yield _at_least(f"{call} gateway / direct, spread, {at}", ratios(gateway).of_direct, 0.6, "{:.2f} of direct")
        added = _added_p50(
            phase("gateway", operation, "spread", LATENCY_CONCURRENCY),
            phase("direct", operation, "spread", LATENCY_CONCURRENCY),
        )
        what = f"{call} gateway p50 - direct p50, spread, {LATENCY_CONCURRENCY} in flight"
        yield _at_most(what, added, 1, "{:.2f} ms")
    for operation, call in CALLS.items():
        hot = phase("gateway", operation, "hot", HEADLINE_CONCURRENCY)
        of_pgbench = ratios(hot).of_pgbench
        yield _at_least(f"{call} gateway, one hot account, {at}: throughput", of_pgbench, 0.5, "{:.2f} of pgbench")
        errors = float(sum(hot.errors.values())) if hot else None
        yield _at_most(f"{call} gateway, one hot account, {at}: errors", errors, 0, "{:.0f}")


def _p99(phase: Phase | None) -> float | None:
    # A phase in which no call completed has no latency to speak of: it misses any bound.
    return None if phase is None else phase.p99_ms if phase.requests else math.inf


def _added_p50(gateway: Phase | None, direct: Phase | None) -> float | None:
    if gateway is None or direct is None:
        return None
    return gateway.p50_ms - direct.p50_ms if gateway.requests and direct.requests else math.inf


def _usage_targets(figures: Figures | None) -> Iterator[Target]:
    rate = figures.ingest_per_second if figures else None
    yield _at_least("usage ingestion end to end: throughput", rate, 100_000, "{:,.0f} records/s")
    yield _at_least("usage ingestion end to end / COPY", figures.of_copy if figures else None, 0.5, "{:.2f} of COPY")


def _memory_targets(measured: Measured) -> Iterator[Target]:
    readings: list[IdleMemory] = []
    if measured.loyalty:
        readings += measured.loyalty.idle_memory
    if measured.usage:
        readings += measured.usage.idle_memory
    if measured.complaints:
        readings += measured.complaints.idle_memory
    if measured.offers:
        readings += measured.offers.idle_memory
    for start in measured.startup or []:
        readings += start.idle_memory
    for spec in CHILDREN:
        largest = max((r.rss_mib for r in readings if r.process == spec.name), default=None)
        yield _at_most(f"idle RSS of the {spec.name} (largest seen)", largest, 120, "{:.1f} MiB")


def _startup_targets(starts: list[StackStart] | None) -> Iterator[Target]:
    if not starts:
        yield _at_most("whole stack from `make run` to every service SERVING", None, 10, "{:.1f} s")
    for start in starts or []:
        what = f"whole stack from `make run` to every service SERVING, {start.data_folder} data"
        yield _at_most(what, start.seconds, 10, "{:.1f} s")


def _at_least(what: str, figure: float | None, bound: float, shown: str) -> Target:
    return _target(what, figure, f">= {shown.format(bound)}", shown, None if figure is None else figure >= bound)


def _at_most(what: str, figure: float | None, bound: float, shown: str) -> Target:
    return _target(what, figure, f"<= {shown.format(bound)}", shown, None if figure is None else figure <= bound)


def _target(what: str, figure: float | None, bound: str, shown: str, met: bool | None) -> Target:
    return Target(what, "not measured" if figure is None else shown.format(figure), bound, met)


# --- figures without a fixed target --------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A figure of the run that no target bounds (the benchmark issue gives none for it): shown, never judged."""

    what: str
    figure: str
    """The measured figure, or "not measured"."""


COMPLAINT_METHODS = ("CreateComplaint", "StartComplaint")
OFFER_METHODS = ("RecommendTariff", "GetNextBestActions")


def figures(measured: Measured) -> list[Figure]:
    """The usage ingestion until folded, and the figures of the complaints and offers benchmarks at
    HEADLINE_CONCURRENCY calls in flight."""
    complaints, offers = measured.complaints, measured.offers
    return [
        _folded_figure(measured.usage),
        *_call_figures(complaints.calls if complaints else None, COMPLAINT_METHODS),
        *_breach_scan_figures(complaints),
        *_call_figures(offers.calls if offers else None, OFFER_METHODS),
    ]


def figures_table(shown: list[Figure]) -> str:
    """The figures as a table, one a line."""
    width = max(len(f.what) for f in shown)
    lines = ["figures without a fixed target, each from this same run on this machine", f"  {'figure':{width}}  value"]
    lines += [f"  {f.what:{width}}  {f.figure}" for f in shown]
    return "\n".join(lines)


def _folded_figure(usage: Figures | None) -> Figure:
    what = "usage ingestion until folded into the profiles"
    if usage is None:
        return Figure(what, "not measured")
    rate = usage.folded_per_second
    if rate is None:
        return Figure(what, "not folded within the wait")
    return Figure(what, f"{rate:,.0f} records/s, {rate / usage.copy_per_second:.2f} of COPY")


def _call_figures(calls: CallPhases | None, methods: tuple[str, ...]) -> Iterator[Figure]:
    at = f"{HEADLINE_CONCURRENCY} in flight"
    for method in methods:
        for path, echo in ((DIRECT, "echo"), (GATEWAY, "echo+hop")):
            phase = calls.phase(path, method, HEADLINE_CONCURRENCY) if calls else None
            if calls is None or phase is None:
                yield Figure(f"{method} {path}, {at}", "not measured")
                continue
            ratios = calls.ratios(phase)
            shares = [f"{ratios.of_echo:.2f} of {echo}" if ratios.of_echo is not None else f"no {echo}"]
            if ratios.of_direct is not None:
                shares.append(f"{ratios.of_direct:.2f} of direct")
            errors = sum(phase.errors.values())
            failed = f", {errors} errors" if errors else ""
            yield Figure(
                f"{method} {path}, {at}",
                f"{phase.per_second:,.0f}/s, {', '.join(shares)}, p50 {phase.p50_ms:.1f} ms, "
                f"p99 {phase.p99_ms:.1f} ms{failed}",
            )


def _breach_scan_figures(run: ComplaintsRun | None) -> Iterator[Figure]:
    if run is None:
        yield Figure("breach scan plan at the open tickets", "not measured")
        yield Figure("one scheduled run over the open tickets", "not measured")
        return
    scan = run.breach_scan
    plan = scan.breach_plan
    read = f"index {', '.join(plan.indexes)}" if plan.indexes else "no index"
    sequential = ", sequential scan of complaints" if plan.sequential else ", no sequential scan"
    at = f"{scan.open_tickets:,} open tickets"
    yield Figure(f"breach scan plan at {at}", f"{read}{sequential}")
    first, second = scan.first_run, scan.second_run
    yield Figure(
        f"one scheduled run over {at}, {scan.due_tickets:,} due", f"{first.seconds:.2f} s, {first.breaches:,} breaches"
    )
    yield Figure(f"one scheduled run over {at}, none due", f"{second.seconds:.3f} s")
