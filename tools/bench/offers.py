"""Tariff advice and next-best actions throughput, directly and through the gateway.

Sets up a temporary embedded PostgreSQL and starts the customer and offers services and the gateway
as their own processes on 127.0.0.1 (`tools.bench.service_processes`, `tools.bench.measured_gateway`),
the offers service reading lines and usage from the customer service and following its feed, as
deployed. Creates a catalog of a few plans of one region, opens lines in that region on the dearest
of them for customers of their own, half of whom grant marketing consent, sends each line a month of
usage through IngestUsage, and adds action rules for the region (a bundle offer and a service message).
Once every line's usage has been folded and the offers service's read model has the lines, measures at
several concurrencies RecommendTariff on a random line (each advice costs every plan on the line's
usage and is kept) and GetNextBestActions for a random customer on the web: directly (with the caller
metadata the gateway would forward for an agent) and through the gateway as an agent with a signed
token over TLS, where the gateway exposes the method. Each phase is held against the echo baselines
measured in the same run (`tools.bench.call_phases`), and is bounded in calls and in time. Nothing is
asserted. Prints the table and writes it as JSON to `.data/bench/offers.json`.
"""

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from chassis.caller import Caller
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.offers.v1 import catalog_pb2, next_best_action_service_pb2, offers_service_pb2, recommendation_pb2
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from gateway.routes import EXPOSED_SERVICES
from services.customer.app import CUSTOMER
from services.offers.app import OFFERS
from tests.integration.offers.catalog_support import tariff
from tests.integration.offers.line_support import last_month, open_line
from tests.processes import ServiceProcess
from tests.support import proto_day
from tools.bench.baselines import measure_baselines
from tools.bench.call_phases import DIRECT, GATEWAY, HEADER, CallPhase, CallPhases, measure_phase
from tools.bench.calls import CALL_TIMEOUT_SECONDS, FULL_LIMITS, QUICK_LIMITS, PhaseLimits, drive
from tools.bench.idle_memory import IdleMemory, idle_memory
from tools.bench.idle_memory import report as idle_memory_report
from tools.bench.measured_gateway import start_gateway
from tools.bench.service_processes import QUIET, start_service
from tools.bench.sizes import chosen_sizes
from tools.postgres import open_cluster

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceAsyncStub
    from crm.customer.v1.usage_pb2_grpc import UsageServiceAsyncStub
    from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceAsyncStub
    from crm.offers.v1.offers_service_pb2_grpc import OfferServiceAsyncStub

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "offers.json"
OFFER_SERVICE = "crm.offers.v1.OfferService"
NEXT_BEST_ACTION_SERVICE = "crm.offers.v1.NextBestActionService"
CONCURRENCIES = (1, 8, 32)
SETUP_SECONDS = 300.0
READY_TIMEOUT_SECONDS = 120.0
"""Longest the usage folding and the offers service's read model may take to have every line."""
RECOMMEND, NEXT_BEST_ACTIONS = "RecommendTariff", "GetNextBestActions"
REGION = "Bench viloyati"
"""The home region of every line, where every plan and rule of the run is sold."""
USED_DAYS = (2, 5, 8, 11, 14, 17, 20, 23, 26)
"""Days of last month each line was used on."""
AGENT = Caller(subject="offers-bench", kind="employee", roles=("agent",))
"""Who asks for the advice and the actions: an agent, as the gateway forwards one (direct) or as its token says."""
MARKETING = Caller(subject="offers-bench-marketing", kind="employee", roles=("marketing",))
"""Who creates the catalog and the action rules."""


@dataclass(frozen=True)
class OffersSizes:
    """How big a run is."""

    lines: int
    """Lines (each of a customer of its own) the advice and the actions are asked for, one at random per call."""
    concurrency: list[int]
    """Calls in flight, one phase each."""
    requests: int
    """Most calls per phase."""
    seconds: float
    """Longest phase."""


FULL = OffersSizes(200, list(CONCURRENCIES), FULL_LIMITS.max_requests, FULL_LIMITS.max_seconds)
QUICK = OffersSizes(20, list(CONCURRENCIES), QUICK_LIMITS.max_requests, QUICK_LIMITS.max_seconds)


# --- the catalog, the lines and the rules ----------------------------------------------------------


def catalog() -> list[catalog_pb2.ProductOffering]:
    """The plans of the region, the dearest first (every line starts on it)."""
    region = (REGION,)
    return [
        tariff("Bench Classic", price=120_000, data_mb=20_000, regions=region),
        tariff("Bench Lite", price=30_000, on_net=200, data_mb=2_000, regions=region),
        tariff("Bench Mid", price=60_000, regions=region),
        tariff("Bench Premium", price=90_000, promoted=True, regions=region),
        tariff("Bench Day Pass", price=3_000, model=catalog_pb2.PRICE_MODEL_PER_DAY_OF_USE, regions=region),
    ]


async def create_catalog(offers: "OfferServiceAsyncStub") -> list[str]:
    """Creates the plans of `catalog()`; their names, in its order."""
    names = []
    for offering in catalog():
        created = await offers.CreateProductOffering(
            offers_service_pb2.CreateProductOfferingRequest(
                product_offering=offering,
                product_offering_id=f"bench-{uuid.uuid4().hex[:12]}",
                request_id=str(uuid.uuid4()),
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=MARKETING.to_metadata(),
        )
        names.append(created.name)
    return names


@dataclass(frozen=True)
class BenchLine:
    """A line the phases ask about."""

    subscription: str
    """`customers/{customer}/subscriptions/{subscription}`."""
    msisdn: str

    @property
    def customer(self) -> str:
        """`customers/{customer}`."""
        return self.subscription.split("/subscriptions/")[0]


async def open_lines(customers: "CustomerServiceAsyncStub", plan: str, count: int) -> list[BenchLine]:
    """Opens `count` lines on `plan` in the region, each for a new customer; every other customer
    grants marketing consent."""
    lines: list[BenchLine] = []
    opened = itertools.count()

    async def open_one() -> None:
        subscription, msisdn = await open_line(customers, plan=plan, home_region=REGION)
        if next(opened) % 2 == 0:
            await customers.RecordConsent(
                customer_service_pb2.RecordConsentRequest(
                    parent=subscription.split("/subscriptions/")[0],
                    purpose=customer_pb2.CONSENT_PURPOSE_MARKETING,
                    decision=customer_pb2.CONSENT_DECISION_GRANTED,
                    channel=common_pb2.CHANNEL_APP,
                    request_id=str(uuid.uuid4()),
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        lines.append(BenchLine(subscription, msisdn))

    driven = await drive(open_one, concurrency=8, limits=PhaseLimits(count, SETUP_SECONDS))
    if len(lines) < count:
        raise RuntimeError(f"opened {len(lines)} of {count} lines; failures: {dict(driven.errors)}")
    return lines


async def use_lines(usage: "UsageServiceAsyncStub", lines: list[BenchLine]) -> None:
    """Sends each line's usage of last month in one IngestUsage stream."""
    rng = random.Random(13)
    records = [
        usage_pb2.UsageRecord(
            record_id=f"bench-{uuid.uuid4()}",
            msisdn=line.msisdn,
            usage_date=proto_day(last_month(day)),
            on_net_minutes=round(rng.uniform(2, 20), 1),
            off_net_minutes=round(rng.uniform(0, 8), 1),
            sms_count=rng.randint(0, 3),
            data_mb=round(rng.uniform(20, 300), 1),
            area="Toshkent",
            radio_technology=usage_pb2.RADIO_TECHNOLOGY_4G,
        )
        for line in lines
        for day in USED_DAYS
    ]

    async def stream() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        for start in range(0, len(records), 1_000):
            yield usage_pb2.IngestUsageRequest(records=records[start : start + 1_000])

    answer = await usage.IngestUsage(stream(), timeout=SETUP_SECONDS)
    if answer.accepted != len(records):
        raise RuntimeError(f"IngestUsage accepted {answer.accepted} of {len(records)} records: {answer}")


async def create_rules(next_best_actions: "NextBestActionServiceAsyncStub", offering: str) -> list[str]:
    """A bundle offer of `offering` and a service message, for the region's customers; their names."""
    rules = [
        nba_pb2.ActionRule(
            display_name="Bench bundle",
            kind=nba_pb2.ACTION_KIND_BUNDLE_OFFER,
            offering=offering,
            message="Sizga maxsus taklif",
            regions=[REGION],
            value=100.0,
            business_weight=1.0,
            active=True,
        ),
        nba_pb2.ActionRule(
            display_name="Bench notice",
            kind=nba_pb2.ACTION_KIND_SERVICE_MESSAGE,
            message="Tarmoq yangilandi",
            regions=[REGION],
            value=1.0,
            business_weight=1.0,
            active=True,
        ),
    ]
    names = []
    for rule in rules:
        created = await next_best_actions.CreateActionRule(
            next_best_action_service_pb2.CreateActionRuleRequest(
                action_rule=rule, action_rule_id=f"bench-{uuid.uuid4().hex[:12]}", request_id=str(uuid.uuid4())
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=MARKETING.to_metadata(),
        )
        names.append(created.name)
    return names


async def wait_until_advisable(
    offers: "OfferServiceAsyncStub", next_best_actions: "NextBestActionServiceAsyncStub", lines: list[BenchLine]
) -> None:
    """Waits until every line's advice reads its usage and every customer is offered an action: the
    customer service has folded the usage and the offers service's read model has the lines."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = list(lines)
    while waiting:
        line = waiting[-1]
        advice = await offers.RecommendTariff(
            offers_service_pb2.RecommendTariffRequest(subscription=line.subscription), timeout=CALL_TIMEOUT_SECONDS
        )
        actions = await next_best_actions.GetNextBestActions(
            next_best_action_service_pb2.GetNextBestActionsRequest(
                customer=line.customer, channel=common_pb2.CHANNEL_WEB
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        if advice.outcome != recommendation_pb2.RECOMMENDATION_OUTCOME_NO_USAGE and actions.actions:
            waiting.pop()
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(waiting)} of {len(lines)} lines not ready after {READY_TIMEOUT_SECONDS:.0f} s; "
                f"{line.subscription}: advice {recommendation_pb2.RecommendationOutcome.Name(advice.outcome)}, "
                f"{len(actions.actions)} actions, passed over {[p.reason for p in actions.passed_over]}"
            )
        await asyncio.sleep(0.2)


# --- the phases ----------------------------------------------------------------------------------


def advice_call(
    stub: "OfferServiceAsyncStub", pick_line: Callable[[], BenchLine], metadata: tuple[tuple[str, str], ...]
) -> Callable[[], Awaitable[recommendation_pb2.TariffRecommendation]]:
    """A factory of RecommendTariff calls, each on a line picked at random."""

    def call() -> Awaitable[recommendation_pb2.TariffRecommendation]:
        request = offers_service_pb2.RecommendTariffRequest(subscription=pick_line().subscription)
        return stub.RecommendTariff(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)

    return call


def actions_call(
    stub: "NextBestActionServiceAsyncStub", pick_line: Callable[[], BenchLine], metadata: tuple[tuple[str, str], ...]
) -> Callable[[], Awaitable[nba_pb2.NextBestActions]]:
    """A factory of GetNextBestActions calls on the web, each for the customer of a line picked at random."""

    def call() -> Awaitable[nba_pb2.NextBestActions]:
        request = next_best_action_service_pb2.GetNextBestActionsRequest(
            customer=pick_line().customer, channel=common_pb2.CHANNEL_WEB
        )
        return stub.GetNextBestActions(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)

    return call


def next_best_actions_served() -> bool:
    """Whether this checkout's contract has GetNextBestActions."""
    service = next_best_action_service_pb2.DESCRIPTOR.services_by_name.get("NextBestActionService")
    return service is not None and "GetNextBestActions" in service.methods_by_name


def gateway_exposes(service_name: str) -> bool:
    """Whether the gateway of this checkout forwards `service_name`."""
    return any(service.name == service_name for service in EXPOSED_SERVICES)


async def measure_path(
    path: str,
    channel: grpc.aio.Channel,
    lines: list[BenchLine],
    methods: list[str],
    concurrencies: list[int],
    limits: PhaseLimits,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[CallPhase]:
    """Each of `methods` at each concurrency over one channel; closes it."""
    phases: list[CallPhase] = []
    rng = random.Random(14)

    def pick_line() -> BenchLine:
        return rng.choice(lines)

    calls = {
        RECOMMEND: advice_call(OfferServiceStub(channel), pick_line, metadata),
        NEXT_BEST_ACTIONS: actions_call(NextBestActionServiceStub(channel), pick_line, metadata),
    }
    async with channel:
        # Connected first, as in the echo phases: no phase pays for the connection.
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_SECONDS)
        for method in methods:
            for concurrency in concurrencies:
                phases.append(await measure_phase(path, method, calls[method], concurrency, limits))
    return phases


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OffersRun:
    """What one run measured."""

    calls: CallPhases
    idle_memory: list[IdleMemory]
    """The offers service's and the gateway's, before the first call."""
    not_measured: list[str]
    """Phases left out, each with why."""

    def as_json(self) -> dict[str, object]:
        """The phases with their ratios, the baselines, the idle memory and what was left out."""
        return {
            "phases": self.calls.as_json(),
            "baselines": self.calls.baselines.as_json(),
            "idle_memory": [asdict(m) for m in self.idle_memory],
            "not_measured": self.not_measured,
        }


def report(run: OffersRun) -> str:
    """The table of phases, and what was not measured."""
    lines = [
        idle_memory_report(run.idle_memory),
        run.calls.report("offers: RecommendTariff on a random line, GetNextBestActions for a random customer"),
    ]
    lines += [f"  not measured: {note}" for note in run.not_measured]
    return "\n".join(lines)


async def run(sizes: OffersSizes) -> OffersRun:
    """One full benchmark run."""
    workspace = Path(tempfile.mkdtemp(prefix="crm-offers-bench-"))
    cluster = open_cluster(workspace / "postgres", temporary=True)
    processes: list[ServiceProcess] = []
    finished = False
    not_measured: list[str] = []
    direct_methods = [RECOMMEND]
    if next_best_actions_served():
        direct_methods.append(NEXT_BEST_ACTIONS)
    else:
        not_measured.append(f"{NEXT_BEST_ACTIONS}: not in this checkout's crm.offers.v1 contract")
    gateway_methods = [RECOMMEND]
    if NEXT_BEST_ACTIONS in direct_methods and gateway_exposes(NEXT_BEST_ACTION_SERVICE):
        gateway_methods.append(NEXT_BEST_ACTIONS)
    elif NEXT_BEST_ACTIONS in direct_methods:
        not_measured.append(f"{NEXT_BEST_ACTIONS} through the gateway: the gateway does not expose it yet")
    for note in not_measured:
        print(f"not measured: {note}", flush=True)
    try:
        customer = await start_service(cluster, workspace, CUSTOMER, "CUSTOMER")
        processes.append(customer.process)
        offers = await start_service(cluster, workspace, OFFERS, "OFFERS", {"OFFERS_CUSTOMER_TARGET": customer.address})
        processes.append(offers.process)
        backends = {"CUSTOMER_TARGET": customer.address, "OFFERS_TARGET": offers.address}
        gateway = await start_gateway(cluster, workspace, backends, serving=[OFFER_SERVICE], environment=QUIET)
        processes.append(gateway.process)
        started = {"offers service": offers.process.process.pid, "gateway": gateway.process.process.pid}
        memory = await idle_memory("offers benchmark", started)
        async with (
            grpc.aio.insecure_channel(customer.address) as customer_channel,
            grpc.aio.insecure_channel(offers.address) as offers_channel,
        ):
            offer_stub, actions_stub = OfferServiceStub(offers_channel), NextBestActionServiceStub(offers_channel)
            plans = await create_catalog(offer_stub)
            print(f"opening {sizes.lines:,} lines on {plans[0]} with last month's usage", flush=True)
            lines = await open_lines(CustomerServiceStub(customer_channel), plans[0], sizes.lines)
            await use_lines(UsageServiceStub(customer_channel), lines)
            await create_rules(actions_stub, plans[1])
            await wait_until_advisable(offer_stub, actions_stub, lines)
        concurrencies, limits = sizes.concurrency, PhaseLimits(sizes.requests, sizes.seconds)
        baselines = await measure_baselines(workspace, concurrencies, limits)
        print(HEADER, flush=True)
        direct = grpc.aio.insecure_channel(offers.address)
        metadata = tuple(AGENT.to_metadata())
        phases = await measure_path(DIRECT, direct, lines, direct_methods, concurrencies, limits, metadata)
        through_gateway, bearer = gateway.channel(), gateway.employee_metadata(AGENT.roles, subject=AGENT.subject)
        phases += await measure_path(GATEWAY, through_gateway, lines, gateway_methods, concurrencies, limits, bearer)
        finished = True
        return OffersRun(CallPhases(phases, baselines), memory, not_measured)
    finally:
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        cluster.stop()
        # The service logs explain a failed run; a finished one needs none of it.
        if finished:
            shutil.rmtree(workspace, ignore_errors=True)
        else:
            print(f"service, echo and gateway logs kept in {workspace}", file=sys.stderr)


def bench(argv: list[str] | None = None) -> OffersRun:
    """Runs the benchmark, prints the table and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, help=f"lines asked about (default {FULL.lines:,})")
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"calls in flight (default {FULL.concurrency})")
    parser.add_argument("--requests", type=int, help=f"most requests per phase (default {FULL.requests:,})")
    parser.add_argument("--seconds", type=float, help=f"longest phase (default {FULL.seconds:g})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    if sizes.lines < 1 or min(sizes.concurrency) < 1 or sizes.requests < 1 or sizes.seconds <= 0:
        parser.error("lines, concurrency, requests and seconds must be positive")
    measured = asyncio.run(run(sizes))
    print(report(measured))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(measured.as_json(), indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    return measured


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark."""
    bench(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
