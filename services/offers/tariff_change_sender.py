"""The plan change saga's second half: accepted changes, committed with their acceptance, applied to
the line in the customer service and their outcome recorded.

`UpdateSubscription` carries no request_id; the line's etag makes the change safe to repeat instead.
Each attempt reads the line: already on the new plan means an earlier attempt applied it (the answer
was lost, or the sender was killed before recording it), so it is recorded as applied without a
second update; on another plan than the one accepted from means someone else changed it, and the
change is refused (the customer accepted leaving that plan, not another); otherwise the tariff is
changed against the etag just read, so two senders cannot both apply it. A change is leased in one
short transaction, sent outside any transaction, and settled in another.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import Aborted, DomainError, Unavailable
from chassis.names import SUBSCRIPTION
from services.offers import plan_change_store
from services.offers.customer_lines import CustomerLines
from services.offers.plan_changes import PlanChange, State
from services.offers.tariff_changes import announce

log = logging.getLogger("crm.offers.plan_changes")

LEASE = timedelta(seconds=30)
"""How long a claimed change is left to its sender before another sends it again."""
RETRY_AFTER = timedelta(seconds=5)
"""When a change is sent again after the customer service could not be reached or the line moved on."""
BATCH = 50


@dataclass(frozen=True)
class Outcome:
    """What one attempt decided: applied, refused (with the customer service's reason), or try again."""

    state: State | None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Sent:
    """What one round of sending did."""

    applied: int = 0
    refused: int = 0


class TariffChangeSender:
    """Applies accepted plan changes in the customer service, each exactly once."""

    def __init__(self, database: Database, clock: Clock, lines: CustomerLines) -> None:
        self._database = database
        self._clock = clock
        self._lines = lines

    async def send_due(self) -> Sent:
        """Sends every change due now, once per lease; records each outcome."""
        claimed = await self.claim_due()
        applied = refused = 0
        for change in claimed:
            outcome = await self.attempt(change)
            await self.settle(change, outcome)
            applied += outcome.state is State.APPLIED
            refused += outcome.state is State.REFUSED
        return Sent(applied, refused)

    async def claim_due(self) -> list[PlanChange]:
        """Leases the changes due now to this sender."""
        async with self._database.transaction() as session:
            return await plan_change_store.claim_due(session, self._clock.now(), LEASE, BATCH)

    async def attempt(self, change: PlanChange) -> Outcome:
        """Applies `change` to the line, or finds it applied; no database transaction is open meanwhile."""
        name = SUBSCRIPTION.format(change.customer_id, change.subscription_id)
        try:
            line = await self._lines.line(name)
            if line.tariff_plan == change.to_plan:
                return Outcome(State.APPLIED)
            if line.tariff_plan != change.from_plan:
                return Outcome(
                    State.REFUSED,
                    "LINE_PLAN_CHANGED",
                    f"the line moved from {change.from_plan} to {line.tariff_plan} after the acceptance",
                )
            await self._lines.change_tariff(line, change.to_plan)
        except (Unavailable, Aborted) as error:
            # Not reached, or the line changed between the read and the update: read it again later.
            log.warning("plan change %s not applied yet (%s); retrying", change.id, error.reason)
            return Outcome(None)
        except DomainError as error:
            return Outcome(State.REFUSED, error.reason, error.message)
        return Outcome(State.APPLIED)

    async def settle(self, change: PlanChange, outcome: Outcome) -> None:
        """Records an attempt's outcome (the first settlement wins) or when to try again."""
        now = self._clock.now()
        async with self._database.transaction() as session:
            if outcome.state is None:
                await plan_change_store.retry_at(session, change.id, now + RETRY_AFTER)
                return
            settled = await plan_change_store.settle(
                session, change.id, outcome.state, now, outcome.reason, outcome.message
            )
            if settled is not None:
                await announce(session, settled, now)

    def start(self) -> None:
        """Nothing to start: sending runs as the service's scheduled work."""

    async def stop(self) -> None:
        """Nothing to stop."""
