"""Use cases of offers put to customers: presented once the decision says the action may be (consent,
eligibility and the contact policy decided again at that moment), accepted or declined, expired on a
schedule, each step announced on the feed as an event of the customer; and the KPIs of a period."""

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.caller import current_caller
from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import FailedPrecondition, invalid_field, not_found
from chassis.idempotency import StoredRequest, request_key, stored_response
from chassis.names import CUSTOMER
from chassis.outbox import append_event
from crm.offers.v1 import events_pb2
from crm.offers.v1 import offer_presentation_pb2 as presentation_pb2
from services.offers import (
    action_mapping,
    action_rule_store,
    catalog_store,
    contact_history_store,
    offer_presentation_store,
)
from services.offers.action_decisions import NextBestActionDecider
from services.offers.money import Money
from services.offers.next_best_actions import contact_limit_words
from services.offers.offer_lifecycle import OfferState, Presentation, answered, retention_effect_words
from services.offers.resource_names import ACTION_RULE, OFFER_PRESENTATION

EXPIRY_BATCH = 500
MAX_KPI_PERIOD = timedelta(days=366)
_EVENTS = {
    OfferState.PRESENTED: events_pb2.OfferPresented,
    OfferState.ACCEPTED: events_pb2.OfferAccepted,
    OfferState.DECLINED: events_pb2.OfferDeclined,
    OfferState.EXPIRED: events_pb2.OfferExpired,
}


class OfferPresentations:
    """Offers put to customers, and what became of them."""

    def __init__(self, database: Database, clock: Clock, decider: NextBestActionDecider) -> None:
        self._database = database
        self._clock = clock
        self._decider = decider

    async def earlier_answer(self, request: Message) -> presentation_pb2.OfferPresentation | None:
        """The answer already given to this very request (a retry): a retry must get it even when the
        first presentation itself now fills the contact policy's weekly cap."""
        key = request_key(request)
        table = catalog_store.idempotency_keys
        async with self._database.transaction() as session:
            row = (
                await session.execute(
                    select(table.c.method, table.c.fingerprint, table.c.response).where(
                        table.c.caller == key.caller, table.c.request_id == key.request_id
                    )
                )
            ).first()
        if row is None or row.response is None:
            return None
        stored = StoredRequest(row.method, row.fingerprint, row.response)
        return stored_response(key, stored, presentation_pb2.OfferPresentation)

    async def decided_presentation(self, customer: str, rule: str, channel: str) -> Presentation:
        """The presentation of the rule's action to the customer, if the decision allows it now;
        FAILED_PRECONDITION with the decision's reason when it does not."""
        rule_id = ACTION_RULE.parse_slug(rule, "rule")
        picture, decision = await self._decider.decide_one(customer, channel, rule_id)
        if not decision.actions:
            refused = decision.passed_over[0]
            raise FailedPrecondition(
                refused.reason, f"{refused.rule.name} cannot be presented: {refused.explanation}", {"rule": rule}
            )
        action = decision.actions[0]
        now = self._clock.now()
        return Presentation(
            id=uuid.uuid4(),
            customer_id=CUSTOMER.parse_uuid(customer, "customer"),
            rule_id=rule_id,
            kind=action.rule.kind,
            offering=action.rule.offering,
            channel=channel,
            segments=tuple(sorted(picture.segments)),
            priority=action.priority,
            presented_by=current_caller().subject,
            present_time=now,
            expire_time=now + timedelta(days=action.rule.offer_validity_days),
        )

    async def expire_due(self) -> int:
        """Marks unanswered presentations past their expire_time as expired; returns how many."""
        now = self._clock.now()
        async with self._database.transaction() as session:
            due = await offer_presentation_store.take_due_expiries(session, now, EXPIRY_BATCH)
            for presentation in due:
                expired = replace(
                    presentation, state=OfferState.EXPIRED, decide_time=now, version=presentation.version + 1
                )
                await offer_presentation_store.record_outcome(session, expired)
                await announce(session, expired, now)
        return len(due)

    async def kpis(self, start: datetime, end: datetime) -> presentation_pb2.OfferKpis:
        """What offers achieved in [start, end)."""
        if end <= start:
            raise invalid_field("end_time", "must be after start_time")
        if end - start > MAX_KPI_PERIOD:
            raise invalid_field("end_time", "must be at most 366 days after start_time")
        async with self._database.transaction() as session:
            counts = await offer_presentation_store.period_counts(session, start, end)
            savings, applied = await offer_presentation_store.savings_given(session, start, end)
            kept = await offer_presentation_store.churn_after_retention(session, OfferState.ACCEPTED, start, end)
            lost = await offer_presentation_store.churn_after_retention(session, OfferState.DECLINED, start, end)
        return action_mapping.kpis_to_proto(
            start,
            end,
            counts,
            [Money(minor, currency) for currency, minor in savings.items()],
            applied,
            kept,
            lost,
            retention_effect_words(kept, lost),
        )


async def record_presentation(session: AsyncSession, presentation: Presentation, now: datetime) -> Presentation:
    """Writes the presentation, counts it in the rule's take-up per segment, and announces it. An offer
    is written only while the contact policy's weekly cap on its channel has room, counted again here
    under the customer's lock for the channel: concurrent presentations cannot pass the cap together
    (FAILED_PRECONDITION CONTACT_LIMIT, as the decision says it)."""
    # A presentation being written is of a customer who is there (only erasure takes the id away).
    if presentation.kind.is_marketing and presentation.customer_id is not None:
        cap = (await action_rule_store.contact_policy(session)).max_offers_per_week_per_channel
        offered = await contact_history_store.offers_this_week(
            session, presentation.customer_id, presentation.channel, now, lock=True
        )
        if offered >= cap:
            raise FailedPrecondition(
                "CONTACT_LIMIT",
                contact_limit_words(offered, presentation.channel, cap),
                {"customer": CUSTOMER.format(presentation.customer_id), "channel": presentation.channel},
            )
    await offer_presentation_store.insert_presentation(session, presentation)
    await contact_history_store.count_presented(session, presentation.rule_id, presentation.segments)
    await announce(session, presentation, now)
    return presentation


async def answer_offer(
    session: AsyncSession, name: str, state: OfferState, channel: str, expected: int | None, now: datetime
) -> Presentation:
    """Records the customer's acceptance or decline of a presented offer."""
    presentation = await offer_presentation_store.get_presentation(
        session, OFFER_PRESENTATION.parse_uuid(name), lock=True
    )
    if presentation is None:
        raise not_found("offer presentation", name)
    changed = answered(
        presentation, state, by=current_caller().subject, channel=channel, now=now, expected_version=expected
    )
    await offer_presentation_store.record_outcome(session, changed)
    if state is OfferState.ACCEPTED:
        await contact_history_store.count_accepted(session, changed.rule_id, changed.segments)
    await announce(session, changed, now)
    return changed


async def get_presentation(session: AsyncSession, name: str) -> Presentation:
    """One presentation; NOT_FOUND when there is none."""
    presentation = await offer_presentation_store.get_presentation(session, OFFER_PRESENTATION.parse_uuid(name))
    if presentation is None:
        raise not_found("offer presentation", name)
    return presentation


async def announce(session: AsyncSession, presentation: Presentation, now: datetime) -> None:
    """Writes the presentation's step to the outbox, as an event of its customer."""
    if presentation.customer_id is None:
        return
    event = _EVENTS[presentation.state](offer_presentation=action_mapping.presentation_to_proto(presentation))
    await append_event(
        session,
        aggregate_type=AggregateType.CUSTOMER,
        aggregate_id=CUSTOMER.format(presentation.customer_id),
        payload=event,
        now=now,
    )
