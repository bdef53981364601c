"""Lines of a retired plan, each proposed the cheapest plan that covers its own usage (never the
operator's preferred one); nothing changes until the customer accepts the proposal.

Retiring a plan queues its lines (from the read model of the customer feed) in the retirement's
transaction; the proposer then advises each line outside any transaction and records its proposal
and takes it off the queue in one."""

import logging
import uuid
from datetime import timedelta

from chassis.clock import Clock, today
from chassis.database import Database
from chassis.errors import DomainError, Unavailable
from chassis.names import SUBSCRIPTION
from services.offers import line_store, plan_change_store
from services.offers.costing import MonthUsage
from services.offers.line_store import DueProposal
from services.offers.plan_changes import Origin, PlanChange, State
from services.offers.ranking import cheapest_covering_plan
from services.offers.tariff_advice import TariffAdvisor
from services.offers.tariff_changes import announce

log = logging.getLogger("crm.offers.retirement")

BATCH = 50
RETRY_AFTER = timedelta(minutes=1)
USAGE_MONTHS = 6


class RetirementProposer:
    """Proposes each line of a retired plan the cheapest plan covering its usage."""

    def __init__(self, database: Database, clock: Clock, advisor: TariffAdvisor) -> None:
        self._database = database
        self._clock = clock
        self._advisor = advisor

    async def propose_due(self) -> int:
        """Makes the proposals due now; returns how many were recorded."""
        async with self._database.transaction() as session:
            due = await line_store.take_due_proposals(session, self._clock.now(), BATCH)
        made = 0
        for line in due:
            made += await self._propose(line)
        return made

    async def _propose(self, due: DueProposal) -> int:
        name = SUBSCRIPTION.format(due.customer_id, due.subscription_id)
        now = self._clock.now()
        try:
            line, advice = await self._advisor.advice_for(name, USAGE_MONTHS)
        except Unavailable:
            async with self._database.transaction() as session:
                await line_store.postpone(session, due, now + RETRY_AFTER)
            return 0
        except DomainError as error:
            log.warning("no proposal for %s after %s was retired: %s", name, due.retired_plan, error)
            async with self._database.transaction() as session:
                await line_store.proposal_made(session, due)
            return 0
        # Without usage yet every plan covers it: the cheapest is costed on an empty month.
        usage = list(advice.usage) or [MonthUsage(today(self._clock).replace(day=1))]
        proposal = cheapest_covering_plan([option.plan for option in advice.options], usage)
        async with self._database.transaction() as session:
            await line_store.proposal_made(session, due)
            if proposal is None or line.tariff_plan != due.retired_plan:
                return 0
            change = PlanChange(
                id=uuid.uuid4(),
                customer_id=due.customer_id,
                subscription_id=due.subscription_id,
                from_plan=due.retired_plan,
                to_plan=proposal.plan.name,
                to_plan_version=proposal.plan.version,
                to_plan_price=proposal.plan.price,
                origin=Origin.RETIREMENT,
                state=State.PROPOSED,
                create_time=now,
            )
            await plan_change_store.insert_change(session, change, due=None)
            await announce(session, change, now)
        return 1
