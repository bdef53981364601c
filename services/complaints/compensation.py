"""The goodwill saga's second half: pending compensations, committed with their resolutions, sent
to `LoyaltyService.GrantGoodwill` with the request id derived from the complaint, and their outcome
recorded.

A compensation is leased in one short transaction, sent outside any transaction, and settled in
another. A sender killed after the credit but before the record leaves the lease to run out; the
next send repeats the same request id, which the loyalty service answers with the first credit, so
the customer is credited once. A refusal (a closed account, no account) is kept and shown.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

import grpc

from chassis.channels import open_channel
from chassis.clock import Clock
from chassis.database import Database
from chassis.status import from_rpc_error
from crm.complaints.v1 import events_pb2
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.complaints import mapping, store
from services.complaints.complaints import announce
from services.complaints.customer_directory import SERVICE_CALLER
from services.complaints.resource_names import COMPLAINT
from services.complaints.tickets import Compensation

log = logging.getLogger("crm.complaints.compensation")

LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
LEASE = timedelta(seconds=30)
"""How long a sent compensation is left to its sender before another sends it again."""
RETRY_AFTER = timedelta(seconds=5)
"""When a compensation is sent again after the loyalty service could not be reached."""
BATCH = 50
# Answers after which sending again cannot help: the loyalty service decided.
_REFUSALS = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
}


@dataclass(frozen=True)
class Sent:
    """What one round of sending did."""

    granted: int = 0
    refused: int = 0


class GoodwillSender:
    """The loyalty service as the compensation sender calls it."""

    def __init__(self, target: str, *, deadline_seconds: float) -> None:
        self._channel = open_channel(target, service_names=[LOYALTY_SERVICE])
        self._loyalty = LoyaltyServiceStub(self._channel)
        self._deadline = deadline_seconds

    async def send_due(self, database: Database, clock: Clock) -> Sent:
        """Sends every compensation due now, once per lease; records each outcome."""
        async with database.transaction() as session:
            due = await store.claim_due_compensations(session, clock.now(), LEASE, BATCH)
        granted = refused = 0
        for compensation in due:
            outcome = await self._send(database, clock, compensation)
            granted += outcome == "granted"
            refused += outcome == "refused"
        return Sent(granted, refused)

    async def _send(self, database: Database, clock: Clock, compensation: Compensation) -> str:
        request = loyalty_service_pb2.GrantGoodwillRequest(
            account=mapping.loyalty_account(compensation.customer_id),
            points=compensation.points,
            reason=f"goodwill for {COMPLAINT.format(compensation.complaint_id)}",
            request_id=compensation.request_id,
        )
        try:
            entry = await self._loyalty.GrantGoodwill(
                request, timeout=self._deadline, metadata=SERVICE_CALLER.to_metadata()
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _REFUSALS:
                refusal = from_rpc_error(error)
                return await _settle(
                    database,
                    clock,
                    compensation,
                    "refused",
                    refusal_reason=refusal.reason,
                    refusal_message=refusal.message,
                )
            log.warning("goodwill for %s not sent (%s); retrying", compensation.complaint_id, error.code().name)
            async with database.transaction() as session:
                await store.retry_compensation_at(session, compensation.complaint_id, clock.now() + RETRY_AFTER)
            return "retry"
        return await _settle(database, clock, compensation, "granted", ledger_entry=entry.name)

    def start(self) -> None:
        """Nothing to start: the channel connects on the first call."""

    async def stop(self) -> None:
        """Closes the channel."""
        await self._channel.close()


async def _settle(
    database: Database,
    clock: Clock,
    compensation: Compensation,
    state: str,
    *,
    ledger_entry: str = "",
    refusal_reason: str = "",
    refusal_message: str = "",
) -> str:
    now = clock.now()
    async with database.transaction() as session:
        settled = await store.settle_compensation(
            session,
            compensation.complaint_id,
            state=state,
            ledger_entry=ledger_entry,
            refusal_reason=refusal_reason,
            refusal_message=refusal_message,
            now=now,
        )
        ticket = await store.get_ticket(session, compensation.complaint_id)
        if settled and ticket is not None and ticket.compensation is not None:
            proto = mapping.compensation_to_proto(ticket.compensation)
            event = events_pb2.CompensationSettled(complaint=COMPLAINT.format(ticket.id), compensation=proto)
            await announce(session, ticket, [event], now)
    return state if settled else "settled before"
