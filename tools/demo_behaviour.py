"""Demo behaviour data: what the network and billing systems would feed the customer service.

For every demo customer with lines: usage records for the last three complete months and this one,
and monthly invoices with payments for the last six months. Each customer follows a usage pattern
(data-heavy, voice-heavy, mostly on-net, roamer, low user, falling usage) and a paying habit (on time,
late, in debt, big spender), so that every segment has members. Each line is used where its holder
lives, on what the network has there (tools.demo_network) and the handset takes: some holders live in
a village with 2G only, some handsets stop at 3G, some take 5G. Deterministic per customer, and every
record and request carries a stable id, so loading twice adds nothing.

These are internal APIs: the loader talks to the customer service directly, as network mediation and
billing would inside the cluster.
"""

import argparse
import asyncio
import hashlib
import random
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
from google.type import date_pb2, money_pb2

from crm.customer.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    customer_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
from tools.demo_network import G2, G3, G4, G5, NetworkArea, Technology, region_area, villages_in
from tools.local_gateway import RETRYING

CALL_TIMEOUT_SECONDS = 30.0
CALL_METADATA = (("x-crm-caller-subject", "demo-billing-and-mediation"), ("x-crm-caller-kind", "service"))
USAGE_BATCH = 2000
CONCURRENT_CUSTOMERS = 8
CURRENCY_BY_COUNTRY = {"UZ": ("UZS", 85_000), "UA": ("UAH", 250), "VN": ("VND", 180_000), "RU": ("RUB", 600)}
PATTERNS = ("data-heavy", "voice-heavy", "on-net", "roamer", "low-user", "falling", "steady", "steady")
HABITS = ("on-time", "on-time", "on-time", "late", "debtor", "big-spender")
# The newest technology a line's handset takes, and the share of lines with such a handset.
HANDSETS = ((G3, 15), (G4, 60), (G5, 25))
VILLAGE_SHARE = 0.4
"""Share of lines of a region with villages whose holder lives in one of them."""
DAYS_AT_HOME_IN_VILLAGE = 0.8
"""Share of a village holder's days of use spent in the village; the others in the region's towns."""
NEWEST_TECHNOLOGY_SHARE = 0.85
"""Share of days a line is on the newest technology both the area and its handset have; else one older."""
ABROAD = NetworkArea("Abroad", "", (G2, G3, G4))
UNKNOWN = NetworkArea("Unknown", "", (G2, G3, G4))


@dataclass(frozen=True)
class BehaviourSummary:
    """What was loaded."""

    customers: int
    usage_records: int
    invoices: int
    payments: int


@dataclass(frozen=True)
class _Line:
    name: str
    msisdn: str
    home_region: str


async def load_behaviour_data(target: str, *, today: date | None = None) -> BehaviourSummary:
    """Feeds usage and billing for every customer the customer service at `target` holds."""
    today = today or datetime.now(UTC).date()
    async with grpc.aio.insecure_channel(target, options=list(RETRYING)) as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        billing = billing_pb2_grpc.BillingServiceStub(channel)
        usage = usage_pb2_grpc.UsageServiceStub(channel)
        everyone = await _customers_with_lines(customers)
        gate = asyncio.Semaphore(CONCURRENT_CUSTOMERS)
        records: list[usage_pb2.UsageRecord] = []
        bills = []
        for customer, lines in everyone:
            rng = random.Random(hashlib.sha256(customer.name.encode()).digest())
            pattern, habit = rng.choice(PATTERNS), rng.choice(HABITS)
            if pattern == "falling" and rng.random() < 0.5:
                habit = "debtor"  # customers drifting away often stop paying too: the churn-risk class
            for line in lines:
                records.extend(_usage_records(line, pattern, rng, today))
            bills.append(_bill(billing, customer.name, _country(customer), habit, rng, today, gate))
        try:
            async with asyncio.TaskGroup() as feeds:
                # Usage streams in while the bills are recorded.
                ingestion = feeds.create_task(_ingest(usage, records))
                billing_runs = [feeds.create_task(bill) for bill in bills]
        except* grpc.aio.AioRpcError as failures:
            raise failures.exceptions[0] from None
        counted, billed = ingestion.result(), [run.result() for run in billing_runs]
        invoices, payments, loaded_customers = sum(b[0] for b in billed), sum(b[1] for b in billed), len(everyone)
    return BehaviourSummary(loaded_customers, counted, invoices, payments)


async def _customers_with_lines(
    # Quoted: mypy-protobuf's async stub types exist for type checkers only.
    stub: "customer_service_pb2_grpc.CustomerServiceAsyncStub",
) -> list[tuple[customer_pb2.Customer, list[_Line]]]:
    """Every customer with a line that is not terminated, and those lines; several read at once."""
    gate = asyncio.Semaphore(CONCURRENT_CUSTOMERS)

    async def live_lines(customer: customer_pb2.Customer) -> list[_Line]:
        async with gate:
            lines = await stub.ListSubscriptions(
                customer_service_pb2.ListSubscriptionsRequest(parent=customer.name, page_size=50),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=CALL_METADATA,
            )
        return [
            _Line(s.name, s.msisdn, s.home_region)
            for s in lines.subscriptions
            if s.status != customer_pb2.SUBSCRIPTION_STATUS_TERMINATED
        ]

    found: list[tuple[customer_pb2.Customer, list[_Line]]] = []
    token = ""
    while True:
        page = await stub.ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=200, page_token=token),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=CALL_METADATA,
        )
        lines_of_page = await asyncio.gather(*(live_lines(customer) for customer in page.customers))
        found += [(customer, lines) for customer, lines in zip(page.customers, lines_of_page, strict=True) if lines]
        token = page.next_page_token
        if not token:
            return found


def _usage_records(line: _Line, pattern: str, rng: random.Random, today: date) -> list[usage_pb2.UsageRecord]:
    """About ten days of use a month for the last three complete months and this one, in the areas the
    line's holder lives and travels in, on the technologies there that the handset takes."""
    records = []
    handset = rng.choices([technology for technology, _ in HANDSETS], weights=[share for _, share in HANDSETS])[0]
    region = region_area(line.home_region) or UNKNOWN
    villages = villages_in(line.home_region)
    village = rng.choice(villages) if villages and rng.random() < VILLAGE_SHARE else None
    month = today.replace(day=1)
    months = [month]
    for _ in range(3):
        months.append((months[-1] - timedelta(days=1)).replace(day=1))
    for age, start in enumerate(months):
        scale = 0.15 if pattern == "falling" and age == 1 else 1.0
        days_in_month = ((start + timedelta(days=32)).replace(day=1) - start).days
        last_day = today.day - 1 if age == 0 else days_in_month
        for day in sorted(rng.sample(range(1, max(last_day, 1) + 1), k=min(10, max(last_day, 1)))):
            data, on_net, off_net, intl, sms = _daily_amounts(pattern, rng)
            roaming = pattern == "roamer" and day % 3 == 0
            if roaming:
                area = ABROAD
            elif village is not None and rng.random() < DAYS_AT_HOME_IN_VILLAGE:
                area = village
            else:
                area = region
            records.append(
                usage_pb2.UsageRecord(
                    record_id=f"demo:{line.name}:{start.isoformat()}:{day}",
                    msisdn=line.msisdn,
                    usage_date=date_pb2.Date(year=start.year, month=start.month, day=day),
                    on_net_minutes=round(on_net * scale, 1),
                    off_net_minutes=round(off_net * scale, 1),
                    international_minutes=round(intl * scale, 1),
                    sms_count=sms,
                    data_mb=round(data * scale, 1),
                    roaming=roaming,
                    area=area.name,
                    radio_technology=_technology_used(area, handset, rng),
                )
            )
    return records


def _technology_used(area: NetworkArea, handset: Technology, rng: random.Random) -> Technology:
    """The technology of a day's use: mostly the newest both the area and the handset have."""
    usable = [technology for technology in area.technologies if technology <= handset] or [area.technologies[0]]
    if len(usable) > 1 and rng.random() >= NEWEST_TECHNOLOGY_SHARE:
        return usable[-2]
    return usable[-1]


def _daily_amounts(pattern: str, rng: random.Random) -> tuple[float, float, float, float, int]:
    """Data MB, on-net, off-net and international minutes, SMS for one day of a pattern."""
    if pattern == "data-heavy":
        return rng.uniform(1500, 3000), rng.uniform(2, 8), rng.uniform(2, 8), 0.0, rng.randint(0, 3)
    if pattern == "voice-heavy":
        return rng.uniform(50, 200), rng.uniform(40, 70), rng.uniform(30, 60), rng.uniform(0, 5), rng.randint(2, 10)
    if pattern == "on-net":
        return rng.uniform(100, 400), rng.uniform(15, 30), rng.uniform(0, 3), 0.0, rng.randint(1, 6)
    if pattern == "low-user":
        return rng.uniform(0, 5), rng.uniform(0, 2), rng.uniform(0, 2), 0.0, rng.randint(0, 1)
    return rng.uniform(200, 600), rng.uniform(5, 15), rng.uniform(5, 15), rng.uniform(0, 2), rng.randint(0, 5)


async def _bill(
    stub: "billing_pb2_grpc.BillingServiceAsyncStub",
    customer: str,
    country: str,
    habit: str,
    rng: random.Random,
    today: date,
    gate: asyncio.Semaphore,
) -> tuple[int, int]:
    """Six monthly invoices, paid as the habit says, once `gate` lets the customer's billing in;
    returns (invoices, payments)."""
    async with gate:
        return await _bill_months(stub, customer, country, habit, rng, today)


async def _bill_months(
    stub: "billing_pb2_grpc.BillingServiceAsyncStub",
    customer: str,
    country: str,
    habit: str,
    rng: random.Random,
    today: date,
) -> tuple[int, int]:
    currency, base = CURRENCY_BY_COUNTRY.get(country, CURRENCY_BY_COUNTRY["UZ"])
    spend = base * (rng.uniform(8, 15) if habit == "big-spender" else rng.uniform(0.6, 1.6))
    invoices = payments = 0
    month = today.replace(day=1)
    for age in range(6, 0, -1):
        issued = month
        for _ in range(age):
            issued = (issued - timedelta(days=1)).replace(day=1)
        due = issued + timedelta(days=20)
        invoice_id = f"INV-{issued:%Y%m}"
        amount = _money(currency, round(spend * rng.uniform(0.9, 1.1)))
        await stub.RecordInvoice(
            billing_pb2.RecordInvoiceRequest(
                parent=customer,
                invoice=billing_pb2.Invoice(
                    invoice_id=invoice_id, amount=amount, issue_date=_date(issued), due_date=_date(due)
                ),
                request_id=f"demo:{_key(customer)}:{invoice_id}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=CALL_METADATA,
        )
        invoices += 1
        if habit == "debtor" and age <= 2:
            continue  # the last two bills stay unpaid
        paid = due + timedelta(days=rng.randint(3, 25)) if habit == "late" else due - timedelta(days=rng.randint(0, 15))
        if paid >= today:
            continue
        await stub.RecordPayment(
            billing_pb2.RecordPaymentRequest(
                parent=customer,
                payment=billing_pb2.Payment(
                    payment_id=f"PAY-{issued:%Y%m}", invoice_id=invoice_id, amount=amount, paid_date=_date(paid)
                ),
                request_id=f"demo:{_key(customer)}:PAY-{issued:%Y%m}",
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=CALL_METADATA,
        )
        payments += 1
    return invoices, payments


async def _ingest(stub: "usage_pb2_grpc.UsageServiceAsyncStub", records: Sequence[usage_pb2.UsageRecord]) -> int:
    async def batches() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        for start in range(0, len(records), USAGE_BATCH):
            yield usage_pb2.IngestUsageRequest(records=records[start : start + USAGE_BATCH])

    reply = await stub.IngestUsage(batches(), timeout=CALL_TIMEOUT_SECONDS * 4, metadata=CALL_METADATA)
    return reply.accepted + reply.duplicates


def _key(name: str) -> str:
    """A resource name as a request-id part (request ids take no '/')."""
    return name.replace("/", ".")


def _country(customer: customer_pb2.Customer) -> str:
    for medium in customer.contact_media:
        if medium.HasField("postal_address") and medium.postal_address.country_code:
            return medium.postal_address.country_code
    return "UZ"


def _money(currency: str, units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=units)


def _date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.demo_behaviour --target host:port` (the customer service, not the gateway)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the customer service (default: %(default)s)")
    arguments = parser.parse_args(argv)
    summary = asyncio.run(load_behaviour_data(arguments.target))
    print(
        f"usage records: {summary.usage_records}, invoices: {summary.invoices}, payments: {summary.payments} "
        f"for {summary.customers} customers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
