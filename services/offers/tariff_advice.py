"""Use cases of tariff advice: read the line and its usage from the customer service (outside any
transaction, with a deadline), cost the market's plans in one short read, and keep the advice."""

import uuid

from chassis.clock import Clock, today
from chassis.database import Database
from chassis.errors import FailedPrecondition, Unavailable, invalid_field, not_found
from chassis.names import SUBSCRIPTION
from crm.offers.v1 import recommendation_pb2
from services.offers import catalog_store, coverage_store, mapping, recommendation_store
from services.offers.advice import Advice, advise, months_to_cost
from services.offers.catalog import OfferingKind
from services.offers.customer_lines import CustomerLines, Line
from services.offers.eligibility import LineContext, area_uses
from services.offers.resource_names import RECOMMENDATION
from services.offers.text_keys import place_key

MAX_MONTHS = 36


class TariffAdvisor:
    """Honest tariff advice for lines of the customer service."""

    def __init__(self, database: Database, clock: Clock, lines: CustomerLines | None) -> None:
        self._database = database
        self._clock = clock
        self._lines = lines

    async def recommend(self, subscription: str, months: int) -> recommendation_pb2.TariffRecommendation:
        """Advice for the line `subscription` on its last `months` months (0: six), kept as evidence."""
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(subscription, "subscription")
        if not 0 <= months <= MAX_MONTHS:
            raise invalid_field("months", f"must be between 0 and {MAX_MONTHS} (0 means 6)")
        line, advice = await self.advice_for(subscription, months)
        now = self._clock.now()
        recommendation_id = uuid.uuid4()
        answer = mapping.recommendation_to_proto(advice, RECOMMENDATION.format(recommendation_id), line.name, now)
        async with self._database.transaction() as session:
            await recommendation_store.keep_advice(
                session,
                recommendation_id,
                customer_id,
                subscription_id,
                advice,
                answer.SerializeToString(deterministic=True),
                now,
            )
        return answer

    async def advice_for(self, subscription: str, months: int) -> tuple[Line, Advice]:
        """The line as the customer service has it and the advice for it, not kept."""
        lines = self._customer_lines()
        line = await lines.line(subscription)
        usage = months_to_cost(await lines.usage(subscription, months), today(self._clock))
        async with self._database.transaction() as session:
            current = await catalog_store.get_offering(session, line.tariff_plan)
            if current is None:
                raise FailedPrecondition(
                    "CURRENT_PLAN_UNKNOWN",
                    f"the line's plan {line.tariff_plan!r} is not in the catalog, so nothing can be compared with it",
                    {"tariff_plan": line.tariff_plan},
                )
            plans = await catalog_store.market_offerings(session, current.market, OfferingKind.TARIFF_PLAN)
            area_keys = sorted({place_key(use.area) for use in area_uses(usage)})
            coverage = await coverage_store.coverage_of(session, current.market, area_keys)
        context = LineContext(market=current.market, home_region=line.home_region, usage=usage)
        return line, advise(current, plans, context, coverage, self._clock.now())

    async def line(self, subscription: str) -> Line:
        """The line as the customer service has it now."""
        return await self._customer_lines().line(subscription)

    async def kept_advice(self, name: str) -> recommendation_pb2.TariffRecommendation:
        """Advice given before, as it was sent."""
        recommendation_id = RECOMMENDATION.parse_uuid(name)
        async with self._database.transaction() as session:
            answer = await recommendation_store.advice_answer(session, recommendation_id)
        if answer is None:
            raise not_found("tariff recommendation", name)
        return recommendation_pb2.TariffRecommendation.FromString(answer)

    def _customer_lines(self) -> CustomerLines:
        if self._lines is None:
            raise Unavailable(
                "CUSTOMER_SERVICE_NOT_CONFIGURED", "this offers service has no customer service to read lines from"
            )
        return self._lines
