"""The loyalty service killed and restarted while it follows the customer service's events: every
payment is credited exactly once. Both services run as real processes on their own databases."""

import asyncio
import random
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.type import date_pb2, money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import async_url
from chassis.settings import Environment
from crm.customer.v1 import billing_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.loyalty.app import migrate_loyalty_database
from services.loyalty.earning import EVENT_TYPES
from services.loyalty.settings import LoyaltySettings
from tests.event_support import feed_end
from tests.processes import ServiceProcess, free_port, start_process, wait_until_serving
from tests.support import create_request, person, request_id
from tools.postgres import PostgresCluster

CUSTOMERS = 40
PAYMENTS_PER_CUSTOMER = 6
KILLS = 3
TODAY = datetime.now(UTC).date()


def day(value: object) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)  # type: ignore[attr-defined]


async def pay(billing: BillingServiceStub, customer: str, number: int, units: int) -> None:
    amount = money_pb2.Money(currency_code="UZS", units=units)
    invoice_id = f"INV-{number}"
    await billing.RecordInvoice(
        billing_pb2.RecordInvoiceRequest(
            parent=customer,
            invoice=billing_pb2.Invoice(
                invoice_id=invoice_id,
                amount=amount,
                issue_date=day(TODAY - timedelta(days=3)),
                due_date=day(TODAY + timedelta(days=20)),
            ),
            request_id=request_id(),
        ),
        timeout=10,
    )
    await billing.RecordPayment(
        billing_pb2.RecordPaymentRequest(
            parent=customer,
            payment=billing_pb2.Payment(
                payment_id=f"PAY-{number}", invoice_id=invoice_id, amount=amount, paid_date=day(TODAY)
            ),
            request_id=request_id(),
        ),
        timeout=10,
    )


async def _lag(customer_engine: AsyncEngine, loyalty_engine: AsyncEngine) -> int:
    """Customer events not yet applied by the follower."""
    async with customer_engine.connect() as connection:
        produced = (await connection.execute(text("SELECT coalesce(max(position), 0) FROM outbox"))).scalar_one()
    async with loyalty_engine.connect() as connection:
        applied = (await connection.execute(text("SELECT coalesce(max(position), 0) FROM event_cursors"))).scalar_one()
    return int(produced - applied)


async def test_a_loyalty_service_killed_while_following_events_credits_every_payment_exactly_once(
    postgres: PostgresCluster,
    migrated_database_url: Callable[[str], str],
    worker_id: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    customer_url = migrated_database_url("customer_loyalty_kill")
    loyalty_name = f"loyalty_kill_{worker_id}"
    postgres.drop_database(loyalty_name)
    loyalty_url = postgres.ensure_database(loyalty_name)
    migrate_loyalty_database(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": loyalty_url})))
    logs = Path(tmp_path_factory.mktemp("loyalty-kill-logs"))
    customer_address = f"127.0.0.1:{free_port()}"
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": customer_url,
            "CUSTOMER_GRPC_ADDRESS": customer_address,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        customer_address,
        logs,
    )

    def start_loyalty(run: int) -> ServiceProcess:
        address = f"127.0.0.1:{free_port()}"
        return start_process(
            f"loyalty-{run}",
            "services.loyalty",
            {
                "LOYALTY_DATABASE_URL": loyalty_url,
                "LOYALTY_GRPC_ADDRESS": address,
                "LOYALTY_CUSTOMER_FEED_TARGET": customer_address,
                "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
            },
            address,
            logs,
        )

    loyalty = start_loyalty(0)
    loyalty_engine = create_async_engine(async_url(loyalty_url))
    customer_engine = create_async_engine(async_url(customer_url))
    rng = random.Random(11)
    expected: dict[str, int] = {}
    lag: list[int] = []
    try:
        await wait_until_serving(customer)
        await wait_until_serving(loyalty)
        async with grpc.aio.insecure_channel(customer_address) as channel:
            customers = CustomerServiceStub(channel)
            billing = BillingServiceStub(channel)
            names = [
                (await customers.CreateCustomer(create_request(person()), timeout=10)).name for _ in range(CUSTOMERS)
            ]
            payments = [(name, n) for name in names for n in range(PAYMENTS_PER_CUSTOMER)]
            rng.shuffle(payments)
            amounts = {payment: rng.randrange(1_000, 150_000) for payment in payments}
            for name, n in payments:
                # 1 point per whole 1,000 UZS; under 1,000 points an account stays bronze (no multiplier).
                expected[name] = expected.get(name, 0) + amounts[(name, n)] // 1000
            burst = len(payments) // (KILLS + 1) + 1
            for kill in range(KILLS + 1):
                # A burst of concurrent payments puts the follower behind; it is killed while catching up.
                chunk = payments[kill * burst : (kill + 1) * burst]
                await asyncio.gather(*(pay(billing, name, n, amounts[(name, n)]) for name, n in chunk))
                if kill < KILLS:
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    loyalty.process.send_signal(signal.SIGKILL)
                    loyalty.process.wait(10)
                    lag.append(await _lag(customer_engine, loyalty_engine))
                    loyalty = start_loyalty(kill + 1)
                    await wait_until_serving(loyalty)

        await feed_end(customer_engine)
        async with customer_engine.connect() as connection:
            # The follower's cursor moves with the events it reads; the others it never sees.
            last_position = (
                await connection.execute(
                    text("SELECT max(position) FROM outbox WHERE type = ANY(:types)"), {"types": list(EVENT_TYPES)}
                )
            ).scalar_one()
        async with asyncio.timeout(90):
            while True:
                async with loyalty_engine.connect() as connection:
                    reached = (
                        await connection.execute(text("SELECT coalesce(max(position), 0) FROM event_cursors"))
                    ).scalar_one()
                if reached >= last_position:
                    break
                await asyncio.sleep(0.2)

        async with loyalty_engine.connect() as connection:
            balances = {
                f"customers/{row.id}": (row.balance, row.points)
                for row in await connection.execute(
                    text(
                        "SELECT a.id, a.balance, (SELECT coalesce(sum(points), 0) FROM ledger_entries e "
                        "WHERE e.account_id = a.id) AS points FROM accounts a"
                    )
                )
            }
            per_fact = (
                await connection.execute(
                    text(
                        "SELECT count(*) AS credits, count(DISTINCT (account_id, rule, source_key)) AS facts, "
                        "count(DISTINCT source_event) AS events FROM ledger_entries WHERE rule = 'bill-payments-uzs'"
                    )
                )
            ).one()
        credited_payments = len(payments)
        print(f"events still to apply at each kill: {lag}")
        assert {name: balance for name, (balance, _) in balances.items()} == expected
        assert all(balance == points for balance, points in balances.values())
        assert (per_fact.credits, per_fact.facts, per_fact.events) == (credited_payments,) * 3
    finally:
        await loyalty_engine.dispose()
        await customer_engine.dispose()
        loyalty.stop()
        customer.stop()
