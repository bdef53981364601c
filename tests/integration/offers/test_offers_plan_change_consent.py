"""No plan change without consent, on the real offers database and the real customer service: a
change without acceptance is refused and changes nothing; an accepted change is recorded with its
evidence and applied to the line exactly once, also when the sender dies between the update and the
record and the line is moved back or on meanwhile; a line moved before the update, or between the
sender's read and its update, is refused and the refusal kept."""

from datetime import timedelta

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.caller import Caller
from chassis.clock import ManualClock
from chassis.database import Database
from chassis.server import ServiceServer
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.offers.v1 import offers_service_pb2, plan_change_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.offers.customer_lines import SERVICE_CALLER, CustomerLines, Line
from services.offers.tariff_change_sender import LEASE, RETRY_AFTER, TariffChangeSender
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import open_line
from tests.support import failure, request_id

AGENT = Caller(subject="agent-7", kind="employee", roles=("agent",)).to_metadata()
CUSTOMER_SELF = plan_change_pb2.Acceptance(
    acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_CUSTOMER, channel=common_pb2.CHANNEL_APP
)
BY_AGENT = plan_change_pb2.Acceptance(
    acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_AGENT_FOR_CUSTOMER, channel=common_pb2.CHANNEL_CALL_CENTRE
)


async def _line_on_two_plans(offers: OfferServiceStub, customers: CustomerServiceStub) -> tuple[str, str, str]:
    region = fresh_region()
    old = await create(offers, tariff("Old Classic", price=90_000, regions=(region,)))
    new = await create(offers, tariff("Lite", price=30_000, regions=(region,)))
    subscription, _ = await open_line(customers, plan=old, home_region=region)
    return subscription, old, new


def _change(subscription: str, to_plan: str, acceptance: plan_change_pb2.Acceptance | None):
    change = plan_change_pb2.PlanChange(subscription=subscription, to_plan=to_plan)
    if acceptance is not None:
        change.acceptance.CopyFrom(acceptance)
    return offers_service_pb2.CreatePlanChangeRequest(plan_change=change, request_id=request_id())


async def _line(customers: CustomerServiceStub, name: str) -> customer_pb2.Subscription:
    return await customers.GetSubscription(customer_service_pb2.GetSubscriptionRequest(name=name), timeout=5)


def _move(subscription: str, plan: str) -> customer_service_pb2.UpdateSubscriptionRequest:
    """Someone else's change of the line's plan, made in the customer service directly."""
    update = customer_service_pb2.UpdateSubscriptionRequest(
        subscription=customer_pb2.Subscription(name=subscription, tariff_plan_id=plan)
    )
    update.update_mask.paths.append("tariff_plan_id")
    return update


async def _state(offers: OfferServiceStub, change: plan_change_pb2.PlanChange) -> plan_change_pb2.PlanChange:
    return await offers.GetPlanChange(offers_service_pb2.GetPlanChangeRequest(name=change.name), timeout=5)


async def _answers_kept_for(engine: AsyncEngine, change_id: object) -> int:
    """How many answers the customer service keeps for the sender's update of the change."""
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text("SELECT count(*) FROM idempotency_keys WHERE caller = :caller AND request_id = :rid"),
                {"caller": SERVICE_CALLER.subject, "rid": f"plan-change-{change_id}"},
            )
        )


class LinesChangedRightAfterTheRead(CustomerLines):
    """The customer service as the sender sees it, while someone else changes one line once, right
    after the sender read it and before its update arrives."""

    def __init__(
        self, target: str, someone: CustomerServiceStub, change: customer_service_pb2.UpdateSubscriptionRequest
    ) -> None:
        super().__init__(target, deadline_seconds=5)
        self._someone = someone
        self._pending: customer_service_pb2.UpdateSubscriptionRequest | None = change

    async def line(self, name: str) -> Line:
        read = await super().line(name)
        if self._pending is not None and name == self._pending.subscription.name:
            change, self._pending = self._pending, None
            await self._someone.UpdateSubscription(change, timeout=5)
        return read


async def _send_while_someone_changes_the_line(
    customer_server: ServiceServer,
    customers: CustomerServiceStub,
    database: Database,
    clock: ManualClock,
    change: customer_service_pb2.UpdateSubscriptionRequest,
) -> None:
    """One round of a sender whose update of the line arrives after `change`, made right after its read."""
    lines = LinesChangedRightAfterTheRead(f"127.0.0.1:{customer_server.port}", customers, change)
    try:
        await TariffChangeSender(database, clock, lines).send_due()
    finally:
        await lines.stop()


async def _changes_of(engine: AsyncEngine, subscription: str) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text("SELECT count(*) FROM plan_changes WHERE subscription_id = :s"),
                {"s": subscription.rsplit("/", 1)[1]},
            )
        )


async def test_a_plan_change_without_acceptance_is_consent_required_and_changes_nothing(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    offers_engine: AsyncEngine,
    plan_change_sender: TariffChangeSender,
):
    subscription, old, new = await _line_on_two_plans(offers, customer_stub)
    code, error = await failure(offers.CreatePlanChange(_change(subscription, new, None), metadata=AGENT, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUIRED")
    unspecified = plan_change_pb2.Acceptance(channel=common_pb2.CHANNEL_CALL_CENTRE)
    code, error = await failure(
        offers.CreatePlanChange(_change(subscription, new, unspecified), metadata=AGENT, timeout=5)
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUIRED")
    await plan_change_sender.send_due()
    assert await _changes_of(offers_engine, subscription) == 0
    assert (await _line(customer_stub, subscription)).tariff_plan_id == old


async def test_an_agent_records_the_customers_acceptance_and_the_tariff_changes_exactly_once(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    customer_engine: AsyncEngine,
    plan_change_sender: TariffChangeSender,
):
    subscription, old, new = await _line_on_two_plans(offers, customer_stub)
    request = _change(subscription, new, BY_AGENT)
    change = await offers.CreatePlanChange(request, metadata=AGENT, timeout=5)
    assert await offers.CreatePlanChange(request, metadata=AGENT, timeout=5) == change
    assert change.state == plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED
    assert (change.from_plan, change.to_plan, change.to_plan_price.units) == (old, new, 30_000)
    evidence = change.acceptance
    assert (evidence.accepted_by, evidence.channel) == ("agent-7", common_pb2.CHANNEL_CALL_CENTRE)
    assert (
        evidence.HasField("accept_time") and "Lite" in evidence.statement and "30 000 UZS a month" in evidence.statement
    )
    assert (await _line(customer_stub, subscription)).tariff_plan_id == old

    sent = await plan_change_sender.send_due()
    again = await plan_change_sender.send_due()

    assert sent.applied >= 1 and again.applied == 0
    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == (new, 'W/"2"')
    applied = await offers.GetPlanChange(offers_service_pb2.GetPlanChangeRequest(name=change.name), timeout=5)
    assert applied.state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED and applied.HasField("settle_time")
    history = await offers.ListPlanChanges(
        offers_service_pb2.ListPlanChangesRequest(subscription=subscription), timeout=5
    )
    assert [c.name for c in history.plan_changes] == [change.name]


async def test_a_sender_killed_after_the_update_before_the_record_completes_once_after_restart(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    customer_engine: AsyncEngine,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    claimed = [c for c in await plan_change_sender.claim_due() if c.to_plan == new]
    assert len(claimed) == 1
    await plan_change_sender.attempt(claimed[0])  # the update reached the customer service; then the sender died
    assert (await _line(customer_stub, subscription)).tariff_plan_id == new

    offers_clock.advance(LEASE + timedelta(seconds=1))
    await plan_change_sender.send_due()  # the restarted service's sender

    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == (new, 'W/"2"')
    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED
    assert await _answers_kept_for(customer_engine, claimed[0].id) == 1


async def test_a_line_moved_back_after_the_update_before_the_record_is_not_changed_again_after_restart(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, old, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    claimed = [c for c in await plan_change_sender.claim_due() if c.to_plan == new]
    await plan_change_sender.attempt(claimed[0])  # the update reached the customer service; then the sender died
    await customer_stub.UpdateSubscription(_move(subscription, old), timeout=5)  # the line is moved back

    offers_clock.advance(LEASE + timedelta(seconds=1))
    await plan_change_sender.send_due()  # the restarted service's sender

    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == (old, 'W/"3"')
    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED


async def test_a_line_moved_on_after_the_update_before_the_record_is_recorded_as_applied_after_restart(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    claimed = [c for c in await plan_change_sender.claim_due() if c.to_plan == new]
    await plan_change_sender.attempt(claimed[0])  # the update reached the customer service; then the sender died
    await customer_stub.UpdateSubscription(_move(subscription, "plans/someone-elses-choice"), timeout=5)

    offers_clock.advance(LEASE + timedelta(seconds=1))
    await plan_change_sender.send_due()  # the restarted service's sender

    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == ("plans/someone-elses-choice", 'W/"3"')
    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED


async def test_an_update_whose_id_landed_with_an_earlier_etag_is_recorded_as_applied_not_sent_again(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    offers_engine: AsyncEngine,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    claimed = [c for c in await plan_change_sender.claim_due() if c.to_plan == new]
    await plan_change_sender.attempt(claimed[0])  # a copy of the update landed with the etag W/"1"
    async with offers_engine.begin() as connection:  # while the pin moved on, as two racing senders can leave it
        await connection.execute(
            text("UPDATE plan_changes SET update_etag = 'W/\"2\"' WHERE id = :id"), {"id": claimed[0].id}
        )

    offers_clock.advance(LEASE + timedelta(seconds=1))
    await plan_change_sender.send_due()

    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED
    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == (new, 'W/"2"')


async def test_a_line_moved_to_another_plan_meanwhile_is_refused_and_the_refusal_kept(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, plan_change_sender: TariffChangeSender
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    await customer_stub.UpdateSubscription(_move(subscription, "plans/someone-elses-choice"), timeout=5)

    await plan_change_sender.send_due()

    refused = await _state(offers, change)
    assert (refused.state, refused.refusal_reason) == (plan_change_pb2.PLAN_CHANGE_STATE_REFUSED, "LINE_PLAN_CHANGED")
    assert (await _line(customer_stub, subscription)).tariff_plan_id == "plans/someone-elses-choice"


async def test_a_line_moved_to_another_plan_between_the_read_and_the_update_is_refused_on_the_next_attempt(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    customer_server: ServiceServer,
    offers_database: Database,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    someone_elses = _move(subscription, "plans/someone-elses-choice")

    await _send_while_someone_changes_the_line(
        customer_server, customer_stub, offers_database, offers_clock, someone_elses
    )
    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED
    offers_clock.advance(RETRY_AFTER + timedelta(seconds=1))
    await plan_change_sender.send_due()

    refused = await _state(offers, change)
    assert (refused.state, refused.refusal_reason) == (plan_change_pb2.PLAN_CHANGE_STATE_REFUSED, "LINE_PLAN_CHANGED")
    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.etag) == ("plans/someone-elses-choice", 'W/"2"')


async def test_a_line_changed_otherwise_between_the_read_and_the_update_gets_the_plan_on_the_next_attempt(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    customer_server: ServiceServer,
    offers_database: Database,
    offers_clock: ManualClock,
    plan_change_sender: TariffChangeSender,
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    change = await offers.CreatePlanChange(_change(subscription, new, BY_AGENT), metadata=AGENT, timeout=5)
    purpose = customer_service_pb2.UpdateSubscriptionRequest(
        subscription=customer_pb2.Subscription(name=subscription, purpose=customer_pb2.SUBSCRIPTION_PURPOSE_BUSINESS)
    )
    purpose.update_mask.paths.append("purpose")

    await _send_while_someone_changes_the_line(customer_server, customer_stub, offers_database, offers_clock, purpose)
    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED
    offers_clock.advance(RETRY_AFTER + timedelta(seconds=1))
    await plan_change_sender.send_due()

    assert (await _state(offers, change)).state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED
    line = await _line(customer_stub, subscription)
    assert (line.tariff_plan_id, line.purpose, line.etag) == (new, customer_pb2.SUBSCRIPTION_PURPOSE_BUSINESS, 'W/"3"')


async def test_a_customer_accepts_for_themselves_but_an_agent_cannot_pose_as_the_customer(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, offers_engine: AsyncEngine
):
    subscription, _, new = await _line_on_two_plans(offers, customer_stub)
    code, error = await failure(
        offers.CreatePlanChange(_change(subscription, new, CUSTOMER_SELF), metadata=AGENT, timeout=5)
    )
    assert (code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACCEPTOR_NOT_CALLER")
    assert await _changes_of(offers_engine, subscription) == 0
    customer = Caller(subject=subscription.split("/")[1], kind="customer").to_metadata()
    change = await offers.CreatePlanChange(_change(subscription, new, CUSTOMER_SELF), metadata=customer, timeout=5)
    assert change.acceptance.acceptor_kind == plan_change_pb2.ACCEPTOR_KIND_CUSTOMER
    assert change.acceptance.channel == common_pb2.CHANNEL_APP


async def test_a_change_to_a_plan_not_sold_in_the_lines_region_writes_nothing(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, offers_engine: AsyncEngine
):
    subscription, _, _ = await _line_on_two_plans(offers, customer_stub)
    elsewhere = await create(offers, tariff("Elsewhere", price=10_000, regions=(fresh_region(),)))
    code, error = await failure(
        offers.CreatePlanChange(_change(subscription, elsewhere, BY_AGENT), metadata=AGENT, timeout=5)
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PLAN_NOT_AVAILABLE")
    assert await _changes_of(offers_engine, subscription) == 0
