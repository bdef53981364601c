"""Use cases of plan changes over a database session: a change recorded with the customer's
acceptance and its pending step in one transaction, proposals accepted or declined, and the history.
The line is read from the customer service before the transaction, never inside it."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.caller import current_caller
from chassis.errors import FailedPrecondition, not_found
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.outbox import append_event
from chassis.pagination import Page, PageRequest
from crm.offers.v1 import events_pb2
from services.offers import catalog_store, mapping, plan_change_store
from services.offers.catalog import Offering, OfferingKind
from services.offers.customer_lines import Line
from services.offers.eligibility import LineContext, ineligibility
from services.offers.plan_changes import (
    AcceptanceRequest,
    Origin,
    PlanChange,
    State,
    acceptance_statement,
    accepted,
    accepted_by,
    consent_required,
    declined,
)
from services.offers.resource_names import PLAN_CHANGE


async def create_accepted_change(
    session: AsyncSession,
    line: Line,
    to_plan: str,
    acceptance: AcceptanceRequest | None,
    recommendation_id: uuid.UUID | None,
    now: datetime,
) -> PlanChange:
    """Records a change of `line` to `to_plan` with the customer's acceptance, due to be applied now."""
    customer_id, subscription_id = SUBSCRIPTION.parse_uuids(line.name, "plan_change.subscription")
    if acceptance is None or acceptance.acceptor_kind is None:
        raise consent_required(line.name)
    plan = await _plan_for(session, line, to_plan, now)
    if await plan_change_store.change_in_flight(session, subscription_id) is not None:
        raise FailedPrecondition(
            "PLAN_CHANGE_IN_PROGRESS",
            f"{line.name} has an accepted plan change not yet applied; wait for it",
            {"resource_name": line.name},
        )
    statement = acceptance_statement(line.tariff_plan, plan)
    change = PlanChange(
        id=uuid.uuid4(),
        customer_id=customer_id,
        subscription_id=subscription_id,
        from_plan=line.tariff_plan,
        to_plan=plan.name,
        to_plan_version=plan.version,
        to_plan_price=plan.price,
        origin=Origin.RECOMMENDATION if recommendation_id else Origin.REQUEST,
        state=State.ACCEPTED,
        create_time=now,
        recommendation_id=recommendation_id,
        acceptance=accepted_by(acceptance, current_caller(), statement, now, line.name),
    )
    await plan_change_store.insert_change(session, change, due=now)
    await announce(session, change, now)
    return change


async def accept_proposal(
    session: AsyncSession,
    change_id: uuid.UUID,
    acceptance: AcceptanceRequest | None,
    expected_version: int | None,
    now: datetime,
) -> PlanChange:
    """Records the customer's acceptance of a proposed change, due to be applied now."""
    change = await _locked(session, change_id)
    name = PLAN_CHANGE.format(change_id)
    plan = await catalog_store.get_version(session, change.to_plan, change.to_plan_version)
    statement = acceptance_statement(change.from_plan, plan) if plan else f"{change.from_plan} to {change.to_plan}"
    if await plan_change_store.change_in_flight(session, change.subscription_id) is not None:
        raise FailedPrecondition("PLAN_CHANGE_IN_PROGRESS", "the line has an accepted change not yet applied")
    changed = accepted(change, accepted_by(acceptance, current_caller(), statement, now, name), expected_version)
    await plan_change_store.record_decision(session, changed, due=now)
    await announce(session, changed, now)
    return changed


async def decline_proposal(session: AsyncSession, change_id: uuid.UUID, channel: str, now: datetime) -> PlanChange:
    """Records that the customer declined a proposed change."""
    change = await _locked(session, change_id)
    note = f"declined by {current_caller().subject} through {channel or 'an unnamed channel'} at {now.isoformat()}"
    changed = declined(change, note, None)
    await plan_change_store.record_decision(session, changed, due=None)
    await announce(session, changed, now)
    return changed


async def get_change(session: AsyncSession, change_id: uuid.UUID) -> PlanChange:
    """One change; NOT_FOUND when there is none."""
    change = await plan_change_store.get_change(session, change_id)
    if change is None:
        raise not_found("plan change", PLAN_CHANGE.format(change_id))
    return change


async def list_changes(
    session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID, page: PageRequest
) -> Page[PlanChange]:
    """A page of a line's changes, newest first."""
    rows = await plan_change_store.list_changes(session, customer_id, subscription_id, page)
    criteria = {"subscription": SUBSCRIPTION.format(customer_id, subscription_id)}
    return Page.cut(rows, page, lambda c: [c.create_time.isoformat(), str(c.id)], criteria)


async def announce(session: AsyncSession, change: PlanChange, now: datetime) -> None:
    """Writes the change's new state to the outbox, as an event of its customer."""
    await append_event(
        session,
        aggregate_type=AggregateType.CUSTOMER,
        aggregate_id=CUSTOMER.format(change.customer_id),
        payload=events_pb2.PlanChangeUpdated(plan_change=mapping.plan_change_to_proto(change)),
        now=now,
    )


async def _plan_for(session: AsyncSession, line: Line, to_plan: str, now: datetime) -> Offering:
    plan = await catalog_store.get_offering(session, to_plan)
    if plan is None or plan.kind is not OfferingKind.TARIFF_PLAN:
        raise not_found("tariff plan", to_plan)
    if plan.name == line.tariff_plan:
        raise FailedPrecondition("ALREADY_ON_PLAN", f"{line.name} is on {plan.name} already", {"plan": plan.name})
    current = await catalog_store.get_offering(session, line.tariff_plan)
    market = current.market if current else plan.market
    why = ineligibility(plan, LineContext(market, line.home_region, []), {}, now)
    if why is not None and why.reason != "NO_USAGE_TO_CHECK":
        raise FailedPrecondition("PLAN_NOT_AVAILABLE", why.explanation, {"plan": plan.name, "rule": why.reason})
    return plan


async def _locked(session: AsyncSession, change_id: uuid.UUID) -> PlanChange:
    change = await plan_change_store.get_change(session, change_id, lock=True)
    if change is None:
        raise not_found("plan change", PLAN_CHANGE.format(change_id))
    return change
