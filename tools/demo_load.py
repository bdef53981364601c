"""The whole demo load of a local run (what `make run` loads): the demo data of each service that
holds none yet, the parts that do not wait on each other at once, and the values the banner's example
calls use.

Customers (tools.demo_data) go through the gateway with real credentials, spread over several batch
identities of the back office; their usage and bills go straight to the customer service
(tools.demo_behaviour), as network mediation and billing feed it inside the cluster; then loyalty
(tools.demo_loyalty) fills its catalog and waits for the accounts to earn. The offers catalog and
coverage (tools.demo_offers) and the complaints departments, agents and routing rules
(tools.demo_complaints) load while the customers do; the tickets and the tariff advice once the
customers and their usage are there, while loyalty waits. Every caller is paced below its own rate at
the gateway. A part that fails is reported and the others load all the same: the system is worth
exploring without it.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from tools import demo_behaviour, demo_complaints, demo_data, demo_loyalty, demo_offers
from tools.demo_data import LoadedCustomer
from tools.local_gateway import LocalGateway

Result = TypeVar("Result")
Say = Callable[[str], None]


@dataclass(frozen=True)
class ExampleValues:
    """What the banner's example calls name, per service; None where that service has no demo data."""

    customers: demo_data.DemoSamples | None = None
    complaints: demo_complaints.ComplaintsSample | None = None
    offers: demo_offers.TariffAdviceSample | None = None


async def ensure_demo_data(gateway: LocalGateway, customer_service: str, count: int, say: Say) -> ExampleValues:
    """Loads `count` demo customers into a system without customers and each other service's demo data
    where that service holds none (nothing when `count` is 0); returns the example values either way.
    Says what it does, what it loaded and how long that took."""
    try:
        has_customers = await demo_data.holds_customers(gateway)
        has_catalog = await demo_offers.holds_catalog(gateway)
        has_complaints = await demo_complaints.holds_complaints(gateway)
    except grpc.aio.AioRpcError as error:
        say(f"WARNING: demo data not loaded: {error.code().name}: {error.details()}")
        return ExampleValues()
    load_customers, load_catalog, load_complaints = (
        count > 0 and not held for held in (has_customers, has_catalog, has_complaints)
    )
    if not (load_customers or load_catalog or load_complaints):
        return await _example_values(gateway, None, None, None, say)
    parts_to_load = [
        f"{count} demo customers" if load_customers else "",
        "the offers catalog" if load_catalog else "",
        "the complaints departments" if load_complaints else "",
    ]
    say(f"loading {', '.join(part for part in parts_to_load if part)}")
    started = asyncio.get_running_loop().time()
    async with asyncio.TaskGroup() as parts:
        catalog = organisation = loyalty = tickets = advice = None
        if load_catalog:
            catalog = parts.create_task(_part(say, "the offers catalog", demo_offers.load_catalog(gateway)))
        if load_complaints:
            organisation = parts.create_task(
                _part(say, "the complaints departments", demo_complaints.load_organisation(gateway))
            )
        loaded = None
        if load_customers:
            loaded = await _part(say, "the demo customers", _load_customers(gateway, customer_service, count, say))
        if loaded is not None:
            loyalty = parts.create_task(
                _part(say, "the loyalty demo", demo_loyalty.load_loyalty_demo(gateway, loaded.summary.customers))
            )
        customers = await _customers_for_the_others(gateway, loaded, load_catalog or load_complaints, say)
        next_parts = [
            "filling the rewards catalog and waiting for the loyalty accounts to earn" if loyalty else "",
            "filing demo complaints" if organisation is not None and customers else "",
            "asking for tariff advice" if catalog is not None and customers else "",
        ]
        if any(next_parts):
            say("; ".join(part for part in next_parts if part))
        if organisation is not None and await organisation is not None and customers:
            tickets = parts.create_task(
                _part(say, "the demo complaints", demo_complaints.load_tickets(gateway, customers))
            )
        if catalog is not None and await catalog is not None and customers:
            advice = parts.create_task(
                _part(say, "the tariff advice", demo_offers.advise_old_plan_lines(gateway, customers))
            )
    loaded_tickets = tickets.result() if tickets else None
    loaded_advice = advice.result() if advice else None
    _report(
        say,
        loaded,
        loyalty.result() if loyalty else None,
        catalog.result() if catalog else None,
        organisation.result() if organisation else None,
        loaded_tickets,
        loaded_advice,
    )
    say(f"demo data loaded in {asyncio.get_running_loop().time() - started:.1f} s")
    return await _example_values(gateway, loaded, loaded_tickets, loaded_advice, say)


@dataclass(frozen=True)
class _Customers:
    summary: demo_data.DemoSummary
    behaviour: demo_behaviour.BehaviourSummary


async def _load_customers(gateway: LocalGateway, customer_service: str, count: int, say: Say) -> _Customers:
    summary = await demo_data.load_demo_data(gateway, count)
    say("loading their usage and billing")
    behaviour = await demo_behaviour.load_behaviour_data(customer_service)
    return _Customers(summary, behaviour)


async def _customers_for_the_others(
    gateway: LocalGateway, loaded: _Customers | None, needed: bool, say: Say
) -> Sequence[LoadedCustomer]:
    """The demo customers the complaints and offers demos are about, when one of them loads: those
    just loaded, or those the system held already."""
    if not needed:
        return ()
    if loaded is not None:
        return loaded.summary.loaded
    listed = await _part(say, "the customers for the demo complaints and offers", demo_data.list_customers(gateway))
    return [LoadedCustomer(customer, ()) for customer in listed or ()]


async def _part(say: Say, what: str, work: Awaitable[Result]) -> Result | None:
    """The result of one part of the load; None, said as a warning, when it failed."""
    try:
        return await work
    except (demo_data.DemoLoadError, grpc.aio.AioRpcError) as error:
        details = f"{error.code().name}: {error.details()}" if isinstance(error, grpc.aio.AioRpcError) else str(error)
        say(f"WARNING: {what} not loaded: {details}")
        return None


def _report(
    say: Say,
    loaded: _Customers | None,
    loyalty: demo_loyalty.LoyaltySummary | None,
    catalog: tuple[int, int] | None,
    organisation: tuple[int, int, int] | None,
    tickets: demo_complaints.TicketsLoaded | None,
    advice: tuple[int, demo_offers.TariffAdviceSample | None] | None,
) -> None:
    if loaded is not None:
        summary, behaviour = loaded.summary, loaded.behaviour
        line = (
            f"loaded {summary.customers} customers, {summary.subscriptions} lines, "
            f"{summary.consent_records} consent records, {behaviour.usage_records} usage records, "
            f"{behaviour.invoices} invoices, {behaviour.payments} payments"
        )
        if loyalty is not None:
            line += (
                f"; {loyalty.accounts} loyalty accounts, {loyalty.rewards} rewards, {loyalty.redemptions} redemptions"
            )
        say(line)
    if catalog is not None:
        offerings, areas = catalog
        line = f"offers: {offerings} plans and bundles in {', '.join(demo_offers.MARKETS)}, {areas} coverage areas"
        if advice is not None:
            line += f", {advice[0]} plan change{'s' if advice[0] != 1 else ''} accepted in the app"
        say(line)
    if organisation is not None:
        departments, agents, rules = organisation
        line = f"complaints: {departments} departments, {agents} agents, {rules} routing rules"
        if tickets is not None:
            states = ", ".join(
                f"{count} {state.removeprefix('COMPLAINT_STATE_').lower().replace('_', ' ')}"
                for state, count in sorted(tickets.by_state.items())
            )
            line += f", {tickets.complaints} tickets ({states})"
        say(line)
    for problem in tickets.problems if tickets is not None else ():
        say(f"WARNING: demo complaint left out: {problem}")


async def _example_values(
    gateway: LocalGateway,
    loaded: _Customers | None,
    tickets: demo_complaints.TicketsLoaded | None,
    found: tuple[int, demo_offers.TariffAdviceSample | None] | None,
    say: Say,
) -> ExampleValues:
    """The example values from what was just loaded, else from what the system holds."""
    try:
        customers = loaded.summary.samples if loaded is not None else await demo_data.find_samples(gateway)
        complaints = tickets.sample if tickets is not None else await demo_complaints.find_sample(gateway)
        if found is not None:
            offers = found[1]
        else:
            listed = [LoadedCustomer(customer, ()) for customer in await demo_data.list_customers(gateway, max_pages=1)]
            offers = await demo_offers.find_sample(gateway, listed)
    except grpc.aio.AioRpcError as error:
        say(f"WARNING: no example values: {error.code().name}: {error.details()}")
        return ExampleValues()
    return ExampleValues(customers, complaints, offers)
