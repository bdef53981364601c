"""The loyalty service killed and restarted while it follows the customer service's events: every
payment is credited exactly once. Both services run as real processes on their own databases."""

import asyncio
import random
import signal
from pathlib import Path

import grpc
import pytest
from google.type import money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import async_url
from chassis.settings import Environment
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from services.loyalty.app import LOYALTY
from services.loyalty.earning import EVENT_TYPES
from services.loyalty.settings import LoyaltySettings
from tests.event_support import feed_end
from tests.processes import ANY_PORT, ServiceProcess, start_process, wait_until_serving
from tests.support import bill_and_pay, create_request, person
from tools.postgres import PostgresCluster

CUSTOMERS = 40
PAYMENTS_PER_CUSTOMER = 8
KILLS = 3


def uzs(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="UZS", units=units)


PAYMENT_RECORDED = customer_events_pb2.PaymentRecorded.DESCRIPTOR.full_name


def fresh_database(postgres: PostgresCluster, name: str) -> str:
    postgres.drop_database(name)
    return postgres.ensure_database(name)


async def _lag(customer_engine: AsyncEngine, loyalty_engine: AsyncEngine) -> int:
    """Numbered customer events of the followed types that the follower has not applied yet."""
    async with loyalty_engine.connect() as connection:
        applied = (await connection.execute(text("SELECT coalesce(max(position), 0) FROM event_cursors"))).scalar_one()
    async with customer_engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    text("SELECT count(*) FROM outbox WHERE type = ANY(:types) AND position > :applied"),
                    {"types": list(EVENT_TYPES), "applied": applied},
                )
            ).scalar_one()
        )


async def test_a_loyalty_service_killed_while_following_events_credits_every_payment_exactly_once(
    postgres: PostgresCluster, worker_id: str, tmp_path_factory: pytest.TempPathFactory
):
    # Both databases start empty, so that every account and entry comes from this test's payments.
    customer_url = fresh_database(postgres, f"customer_loyalty_kill_{worker_id}")
    CUSTOMER.migrate(CustomerSettings.from_environment(Environment({"CUSTOMER_DATABASE_URL": customer_url})))
    loyalty_url = fresh_database(postgres, f"loyalty_kill_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": loyalty_url})))
    logs = Path(tmp_path_factory.mktemp("loyalty-kill-logs"))
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": customer_url,
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
            # Bursts of about 80 payments at once: they wait their turn instead of being refused.
            "CUSTOMER_MAX_QUEUED_RPCS": "1000",
            "CUSTOMER_MAX_QUEUE_WAIT_SECONDS": "60",
        },
        logs,
    )

    def start_loyalty(run: int) -> ServiceProcess:
        return start_process(
            f"loyalty-{run}",
            "services.loyalty",
            {
                "LOYALTY_DATABASE_URL": loyalty_url,
                "LOYALTY_GRPC_ADDRESS": ANY_PORT,
                "LOYALTY_CUSTOMER_FEED_TARGET": customer.address,
                "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
            },
            logs,
        )

    loyalty: ServiceProcess | None = None
    loyalty_engine = create_async_engine(async_url(loyalty_url))
    customer_engine = create_async_engine(async_url(customer_url))
    rng = random.Random(11)
    expected: dict[str, int] = {}
    lag: list[int] = []
    try:
        await wait_until_serving(customer)
        loyalty = start_loyalty(0)
        await wait_until_serving(loyalty)
        async with grpc.aio.insecure_channel(customer.address) as channel:
            customers = CustomerServiceStub(channel)
            billing = BillingServiceStub(channel)
            names = [
                (await customers.CreateCustomer(create_request(person()), timeout=10)).name for _ in range(CUSTOMERS)
            ]
            payments = [(name, n) for name in names for n in range(PAYMENTS_PER_CUSTOMER)]
            rng.shuffle(payments)
            # 1 point per whole 1,000 UZS; at most 8 x 123 points, under the 1,000 of silver, an account
            # stays bronze (100%).
            amounts = {payment: rng.randrange(1_000, 124_000) for payment in payments}
            for name, n in payments:
                expected[name] = expected.get(name, 0) + amounts[(name, n)] // 1000
            burst = len(payments) // (KILLS + 1) + 1
            for kill in range(KILLS + 1):
                # A burst of concurrent payments puts the follower behind; it is killed while catching up.
                chunk = payments[kill * burst : (kill + 1) * burst]
                await asyncio.gather(
                    *(bill_and_pay(billing, name, uzs(amounts[(name, n)]), timeout_seconds=10) for name, n in chunk)
                )
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
        async with asyncio.timeout(45):
            while True:
                async with loyalty_engine.connect() as connection:
                    reached = (
                        await connection.execute(text("SELECT coalesce(max(position), 0) FROM event_cursors"))
                    ).scalar_one()
                if reached >= last_position:
                    break
                await asyncio.sleep(0.2)

        async with customer_engine.connect() as connection:
            rows = await connection.execute(text("SELECT id FROM outbox WHERE type = :t"), {"t": PAYMENT_RECORDED})
            announced = {str(event_id) for event_id in rows.scalars()}
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
            credits_per_event = {
                str(row.source_event): row.credits
                for row in await connection.execute(
                    text(
                        "SELECT source_event, count(*) AS credits FROM ledger_entries "
                        "WHERE rule = 'bill-payments-uzs' GROUP BY source_event"
                    )
                )
            }
            credits_per_payment = (
                await connection.execute(
                    text(
                        "SELECT count(*) AS credits, count(DISTINCT (rule, source_key)) AS payments "
                        "FROM ledger_entries WHERE rule = 'bill-payments-uzs'"
                    )
                )
            ).one()
        print(f"events still to apply at each kill: {lag}")
        # A kill must find the follower behind, or no restart had anything to resume.
        assert max(lag) > 0
        assert len(announced) == len(payments)
        assert credits_per_event == dict.fromkeys(announced, 1)
        assert (credits_per_payment.credits, credits_per_payment.payments) == (len(payments), len(payments))
        assert {name: balance for name, (balance, _) in balances.items()} == expected
        assert all(balance == points for balance, points in balances.values())
    finally:
        await loyalty_engine.dispose()
        await customer_engine.dispose()
        if loyalty is not None:
            loyalty.stop()
        customer.stop()
