"""Phases of a service's methods, directly and through the gateway, each held against the echo
baselines of the same run: the shape of a benchmark of request/response calls.

A phase keeps a number of calls of one method in flight (`tools.bench.calls.drive`), bounded in
calls and in time. Its throughput is shown as a share of the echo's at the same calls in flight (the
bare echo for a direct phase, the echo through the bare forwarding hop for a gateway phase) and, for
a gateway phase, of the direct phase of the same method and concurrency.
"""

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from tools.bench.baselines import ECHO, ECHO_VIA_HOP, Baselines, EchoPhase
from tools.bench.baselines import report as baselines_report
from tools.bench.calls import PhaseLimits, drive

DIRECT = "direct"
"""The path of phases calling the service itself."""
GATEWAY = "gateway"
"""The path of phases calling through the gateway, as an employee with a signed token over TLS."""


@dataclass(frozen=True)
class CallPhase:
    """One method at one concurrency on one path."""

    path: str
    """DIRECT or GATEWAY."""
    method: str
    """The method called, e.g. CreateComplaint."""
    concurrency: int
    """Calls in flight."""
    requests: int
    """Calls that completed."""
    seconds: float
    """How long the phase ran."""
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls by gRPC status code."""

    @property
    def per_second(self) -> float:
        """Completed calls per second."""
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class CallRatios:
    """A phase's throughput as a share of its references in the same run; None where there is none."""

    of_echo: float | None = None
    """Of the echo's at the same calls in flight: the bare echo for direct, through the hop for gateway."""
    of_direct: float | None = None
    """Of the direct phase of the same method and calls in flight (gateway phases only)."""


async def measure_phase(
    path: str, method: str, make_call: Callable[[], Awaitable[object]], concurrency: int, limits: PhaseLimits
) -> CallPhase:
    """Keeps `concurrency` calls made by `make_call` in flight within `limits`; prints the phase's row."""
    driven = await drive(make_call, concurrency=concurrency, limits=limits)
    phase = CallPhase(
        path,
        method,
        concurrency,
        len(driven.latencies_ms),
        driven.seconds,
        driven.p50_ms,
        driven.p99_ms,
        dict(driven.errors),
    )
    print(_row(phase, CallRatios()), flush=True)
    return phase


@dataclass(frozen=True)
class CallPhases:
    """The phases of one benchmark with the baselines they are held against."""

    phases: list[CallPhase]
    baselines: Baselines

    def phase(self, path: str, method: str, concurrency: int) -> CallPhase | None:
        """The phase measured for that combination; None if it was not."""
        wanted = (path, method, concurrency)
        return next((p for p in self.phases if (p.path, p.method, p.concurrency) == wanted), None)

    def ratios(self, phase: CallPhase) -> CallRatios:
        """The phase's throughput as a share of its echo's and (gateway) of the direct phase's."""
        direct = self.phase(DIRECT, phase.method, phase.concurrency) if phase.path == GATEWAY else None
        return CallRatios(
            of_echo=_share(phase.per_second, self.baselines.reference(phase.path, phase.concurrency)),
            of_direct=_share(phase.per_second, direct),
        )

    def as_json(self) -> list[dict[str, object]]:
        """The phases with their throughput and ratios."""
        return [{**asdict(p), "per_second": p.per_second, **asdict(self.ratios(p))} for p in self.phases]

    def report(self, title: str) -> str:
        """The baselines, then the table of phases, each beside its echo and (gateway) its direct phase."""
        lines = [
            baselines_report(self.baselines),
            f"{title}: throughput and latency per phase;",
            f"of echo = throughput / the echo's at the same calls in flight ({ECHO} for direct, {ECHO_VIA_HOP} "
            "for gateway);",
            "of direct = throughput / the direct phase's for the same method and calls in flight",
            HEADER,
            *(_row(phase, self.ratios(phase)) for phase in self.phases),
        ]
        failed = [p for p in self.phases if p.errors]
        lines += [f"  errors in {p.path} {p.method} x{p.concurrency}: {p.errors}" for p in failed]
        return "\n".join(lines)


def _share(per_second: float, reference: CallPhase | EchoPhase | None) -> float | None:
    return per_second / reference.per_second if reference is not None and reference.per_second else None


HEADER = (
    f"  {'path':8} {'method':20} {'in flight':>9} {'requests':>8} {'errors':>6} {'per s':>7} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'of echo':>7} {'of direct':>9}"
)
"""The head of the table of phases, printed before the first row."""


def _row(phase: CallPhase, ratios: CallRatios) -> str:
    return (
        f"  {phase.path:8} {phase.method:20} {phase.concurrency:9} {phase.requests:8,} "
        f"{sum(phase.errors.values()):6} {phase.per_second:7,.0f} {phase.p50_ms:7.2f} {phase.p99_ms:7.2f} "
        f"{_shown(ratios.of_echo, 7)} {_shown(ratios.of_direct, 9)}"
    )


def _shown(ratio: float | None, width: int) -> str:
    return f"{'-':>{width}}" if ratio is None else f"{ratio:{width}.2f}"
