"""Use case of next-best actions: gather what the decision needs (the customer's segments, loyalty
tier, lines and usage from the local read model, their marketing consent from the customer service
outside any transaction and with a deadline, the rules, catalog, coverage, contact policy and take-up
in one short read) and decide."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock, today
from chassis.database import Database
from chassis.names import CUSTOMER
from crm.customer.v1 import usage_pb2
from services.offers import action_rule_changes, action_rule_store, catalog_store, contact_history_store, coverage_store
from services.offers import customer_profile_store as profiles
from services.offers.action_rules import ActionRule
from services.offers.advice import months_to_cost
from services.offers.catalog import Offering
from services.offers.costing import MonthUsage
from services.offers.customer_lines import CustomerLines, MarketingConsent, month_usage
from services.offers.customer_profile_store import KnownLine
from services.offers.eligibility import area_uses
from services.offers.next_best_actions import CustomerLine, CustomerPicture, Decision, DecisionInputs, decide
from services.offers.text_keys import place_key

RuleSource = Callable[[AsyncSession, str], Awaitable[list[ActionRule]]]
"""The candidate rules of a decision, for the customer's market."""
USAGE_MONTHS = 3
"""Months of usage coverage is checked on."""
NO_CUSTOMER_SERVICE = MarketingConsent(False, "could not be read: no customer service is configured")


class NextBestActionDecider:
    """Decides next-best actions for customers."""

    def __init__(self, database: Database, clock: Clock, lines: CustomerLines | None) -> None:
        self._database = database
        self._clock = clock
        self._lines = lines

    async def decide(self, customer: str, channel: str, max_actions: int) -> tuple[CustomerPicture, Decision]:
        """The best actions for `customer` on `channel` now, and why the other candidates were not chosen."""

        async def every_active_rule(session: AsyncSession, market: str) -> list[ActionRule]:
            return await action_rule_store.active_rules(session, market)

        return await self._decision(customer, channel, max_actions, every_active_rule)

    async def decide_one(self, customer: str, channel: str, rule_id: str) -> tuple[CustomerPicture, Decision]:
        """Whether the rule's action may be put to `customer` on `channel` now, as the only candidate
        (an agent presenting it); NOT_FOUND for an unknown rule."""

        async def the_rule(session: AsyncSession, market: str) -> list[ActionRule]:
            return [await action_rule_changes.get_rule(session, rule_id)]

        return await self._decision(customer, channel, 1, the_rule)

    async def _decision(
        self, customer: str, channel: str, max_actions: int, candidates: RuleSource
    ) -> tuple[CustomerPicture, Decision]:
        customer_id = CUSTOMER.parse_uuid(customer, "customer")
        async with self._database.transaction() as session:
            segments = await profiles.segments_of(session, customer_id)
            tier = await profiles.tier_of(session, customer_id)
            known = await profiles.active_lines(session, customer_id)
        usage = await self._usage(customer_id, known)
        consent = await self._consent(customer)
        now = self._clock.now()
        async with self._database.transaction() as session:
            plans = {line.tariff_plan: await catalog_store.get_offering(session, line.tariff_plan) for line in known}
            lines = [CustomerLine(plans[k.tariff_plan], k.home_region, usage[k.subscription_id]) for k in known]
            picture = CustomerPicture(customer, segments, tier, lines, consent.permitted, consent.words)
            rules = await candidates(session, picture.market)
            offerings: dict[str, Offering] = {}
            for name in sorted({rule.offering for rule in rules if rule.offering}):
                offering = await catalog_store.get_offering(session, name)
                if offering is not None:
                    offerings[name] = offering
            area_keys = sorted({place_key(use.area) for line in lines for use in area_uses(line.usage)})
            coverage = await coverage_store.coverage_of(session, picture.market, area_keys)
            policy = await action_rule_store.contact_policy(session)
            contacts = await contact_history_store.contact_history(
                session, customer_id, channel, timedelta(days=policy.decline_cooldown_days), now
            )
            take_up = await contact_history_store.take_up(session, [rule.rule_id for rule in rules], sorted(segments))
        inputs = DecisionInputs(rules, offerings, coverage, policy, contacts, take_up)
        return picture, decide(picture, inputs, channel, max_actions, now)

    async def _consent(self, customer: str) -> MarketingConsent:
        if self._lines is None:
            return NO_CUSTOMER_SERVICE
        return await self._lines.marketing_consent(customer)

    async def _usage(self, customer_id: uuid.UUID, known: list[KnownLine]) -> dict[uuid.UUID, list[MonthUsage]]:
        """Each line's recent months of usage, from the read model the customer feed keeps."""
        first_of_month = today(self._clock).replace(day=1)
        since = (first_of_month - timedelta(days=USAGE_MONTHS * 31)).replace(day=1)
        async with self._database.transaction() as session:
            kept = await profiles.months_of_usage(session, customer_id, since)
        return {
            line.subscription_id: months_to_cost(
                [month_usage(usage_pb2.MonthlyUsage.FromString(raw)) for raw in kept.get(line.subscription_id, [])],
                today(self._clock),
            )
            for line in known
        }
