"""The plan change saga's second half: accepted changes, committed with their acceptance, applied to
the line in the customer service and their outcome recorded.

Every attempt at a change sends the same `UpdateSubscription`: request_id `plan-change-{id}` with the
line's etag pinned to the change, so a retry after a lost answer or a restart gets the first answer
back and the line changes once, even if it was moved back or on before the outcome was recorded. The
etag comes from the first read of the line, which also decides: on another plan than the one accepted
from, someone else changed it and the change is refused (the customer accepted leaving that plan, not
another); already on the new plan, it is recorded as applied. An update refused as stale (the line
changed between that read and the update; nothing applied) unpins the etag, and the next attempt reads
the line again. A change is leased, pinned and settled in short transactions of their own and sent
outside any.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import Aborted, DomainError, Unavailable
from chassis.names import SUBSCRIPTION
from services.offers import plan_change_store
from services.offers.customer_lines import CustomerLines, Line
from services.offers.plan_changes import PlanChange, State
from services.offers.tariff_changes import announce

log = logging.getLogger("crm.offers.plan_changes")

LEASE = timedelta(seconds=30)
"""How long a claimed change is left to its sender before another sends it again."""
RETRY_AFTER = timedelta(seconds=5)
"""When a change is sent again after the customer service could not be reached or the line moved on."""
BATCH = 50
REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
"""The customer service's reason for an id already used with another request."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt decided: applied, refused (with the customer service's reason), or try again."""

    state: State | None
    reason: str = ""
    message: str = ""
    stale_etag: str = ""
    """The pinned etag the customer service refused as stale: the next attempt reads the line again."""


@dataclass(frozen=True)
class Sent:
    """What one round of sending did."""

    applied: int = 0
    refused: int = 0


def update_request_id(change: PlanChange) -> str:
    """The request id of the change's tariff update, the same on every attempt."""
    return f"plan-change-{change.id}"


def decided_by_line(change: PlanChange, line: Line) -> Outcome | None:
    """What the line's plan, read before the first update, decides: applied already, or refused as
    moved to another plan; None when the line is still on the plan the customer accepted leaving."""
    if line.tariff_plan == change.to_plan:
        return Outcome(State.APPLIED)
    if line.tariff_plan != change.from_plan:
        return Outcome(
            State.REFUSED,
            "LINE_PLAN_CHANGED",
            f"the line moved from {change.from_plan} to {line.tariff_plan} after the acceptance",
        )
    return None


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
        """Applies `change` to the line, or finds it applied; no database transaction is open during a call."""
        name = SUBSCRIPTION.format(change.customer_id, change.subscription_id)
        etag = change.update_etag
        try:
            if not etag:
                line = await self._lines.line(name)
                decided = decided_by_line(change, line)
                if decided is not None:
                    return decided
                etag = await self.pin_etag(change, line.etag)
            await self._lines.change_tariff(name, change.to_plan, etag=etag, request_id=update_request_id(change))
        except Aborted as error:
            # The line changed between the read and the update, so nothing was applied: read it again later.
            log.warning("plan change %s not applied yet (%s); reading the line again", change.id, error.reason)
            return Outcome(None, stale_etag=etag)
        except Unavailable as error:
            # Not reached, or the answer lost: the same request is sent again later.
            log.warning("plan change %s not applied yet (%s); retrying", change.id, error.reason)
            return Outcome(None)
        except DomainError as error:
            if error.reason == REQUEST_ID_REUSED:
                # Only this change's update carries its id: a copy sent with an earlier etag was applied.
                return Outcome(State.APPLIED)
            return Outcome(State.REFUSED, error.reason, error.message)
        return Outcome(State.APPLIED)

    async def pin_etag(self, change: PlanChange, etag: str) -> str:
        """The etag every attempt at `change` sends its update with, pinned now unless pinned already."""
        async with self._database.transaction() as session:
            return await plan_change_store.pin_update_etag(session, change.id, etag)

    async def settle(self, change: PlanChange, outcome: Outcome) -> None:
        """Records an attempt's outcome (the first settlement wins) or when to try again."""
        now = self._clock.now()
        async with self._database.transaction() as session:
            if outcome.state is None:
                if outcome.stale_etag:
                    await plan_change_store.forget_update_etag(session, change.id, outcome.stale_etag)
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
