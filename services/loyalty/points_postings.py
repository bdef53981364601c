"""Earnings, goodwill and redemptions asked for through the API, each written by one database statement.

The database function `post_points` (migration 0004, last rewritten by 0008) does for these postings
what `accounts.record` does for the others (lock the account, write the entry and the new balance,
open a lot or draw on the lots that lapse soonest, raise the tier, announce the entry), together
with the request id's claim and stored answer, in one round trip and one transaction, with nothing
waited for in the service while the account is locked. The service decides all it can without the
account: the checked posting, its lifetime changes, the program's terms (cached per version; the
function refuses terms of another version), and the messages but for the numbers the database adds.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message
from opentelemetry import trace

from chassis.aggregates import AggregateType
from chassis.database import Database
from chassis.errors import Aborted, not_found
from chassis.idempotency import RequestKey, StoredRequest, request_key, stored_response
from chassis.wellknown import timestamp_to_proto
from crm.loyalty.v1 import events_pb2, loyalty_pb2
from services.loyalty import ledger, mapping, posting_statement
from services.loyalty.ledger import EntryKind, Posting
from services.loyalty.posting_statement import Outcome, PointsPostingCall, PointsPostingResult
from services.loyalty.program_rules import DEFAULT_PROGRAM, Program
from services.loyalty.program_versions import current_program
from services.loyalty.resource_names import ACCOUNT, ENTRY

_ENTRY_POSTED = events_pb2.EntryPosted.DESCRIPTOR.full_name
_TIER_CHANGED = events_pb2.TierChanged.DESCRIPTOR.full_name


@dataclass(frozen=True)
class PostingTerms:
    """What a posting needs of one program version, worked out once per version."""

    program: Program
    tier_ids: list[str]
    tier_thresholds: list[int]

    @classmethod
    def of(cls, program: Program) -> "PostingTerms":
        """The terms of `program`."""
        return cls(program, [t.id for t in program.tiers], [t.qualifying_points for t in program.tiers])


class PointsPoster:
    """Writes API postings in one statement each, with the terms of the program version last seen."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._terms = PostingTerms.of(DEFAULT_PROGRAM)

    async def post(
        self, request: Message, account_id: uuid.UUID, posting: Posting, now: datetime
    ) -> loyalty_pb2.LedgerEntry:
        """The entry `posting` wrote to the account at `now`, once per request id: a repeat gets the
        first answer, the id reused for another request is INVALID_ARGUMENT."""
        key = request_key(request)
        for _ in range(2):
            terms = self._terms
            draft = ledger.entry_of(
                account_id,
                posting,
                number=0,
                balance_after=0,
                actor=key.caller,
                now=now,
                expire_time=now + terms.program.points_validity,
            )
            entry = mapping.unnumbered_entry_to_proto(draft)
            call = _call(terms, key, posting, draft, entry)
            async with self._database.driver_connection() as connection:
                result = await posting_statement.post_points(connection, call)
            if result.outcome is not Outcome.PROGRAM_CHANGED:
                return _answer(result, key, call, entry, posting)
            # Another version is in force: read it, and post by its terms.
            async with self._database.transaction() as session:
                self._terms = PostingTerms.of(await current_program(session))
        raise Aborted("PROGRAM_CHANGED", "the program changed while the points were posted; retry the request")


def _call(
    terms: PostingTerms, key: RequestKey, posting: Posting, draft: ledger.Entry, entry: loyalty_pb2.LedgerEntry
) -> PointsPostingCall:
    """The function's arguments for the `draft` entry (numbered 0) of `posting`, and its message `entry`."""
    program, now = terms.program, draft.create_time
    changes = ledger.lifetime_changes(posting)
    review_time = now + program.tier_review_period
    account = ACCOUNT.format(draft.account_id)
    qualifies = posting.kind is EntryKind.EARN
    tier_changed = b""
    if qualifies:
        announced = events_pb2.TierChanged(account=account, review_time=timestamp_to_proto(review_time))
        tier_changed = announced.SerializeToString(deterministic=True)
    return PointsPostingCall(
        caller=key.caller,
        request_id=key.request_id,
        method=key.method,
        fingerprint=key.fingerprint,
        program_version=program.version,
        account_id=draft.account_id,
        kind=draft.kind.value,
        points=draft.points,
        earned=changes.earned,
        redeemed=changes.redeemed,
        reason=draft.reason,
        source_reference=draft.source_reference,
        actor=draft.actor,
        now=now,
        lot_expire_time=draft.expire_time,
        lot_qualifies=qualifies,
        window_start=now - program.qualification_window,
        tier_ids=terms.tier_ids,
        tier_thresholds=terms.tier_thresholds,
        tier_review_time=review_time,
        # The pattern's name with an empty number: the database appends the number it gives the entry.
        entry_name_prefix=ENTRY.format(draft.account_id, ""),
        entry_without_name=entry.SerializeToString(deterministic=True),
        tier_changed_without_tiers=tier_changed,
        aggregate_type=AggregateType.LOYALTY_ACCOUNT,
        aggregate_id=account,
        entry_posted_type=_ENTRY_POSTED,
        tier_changed_type=_TIER_CHANGED,
        trace_id=_trace_id(),
    )


def _answer(
    result: PointsPostingResult,
    key: RequestKey,
    call: PointsPostingCall,
    entry: loyalty_pb2.LedgerEntry,
    posting: Posting,
) -> loyalty_pb2.LedgerEntry:
    """The entry posted or the first answer to the request id, or the refusal as its error."""
    account_id = call.account_id
    if result.outcome is Outcome.POSTED and result.entry_number is not None:
        # The name the database gave the entry: its pattern's name with the number it drew.
        entry.name = f"{call.entry_name_prefix}{result.entry_number}"
        entry.balance_after = result.entry_balance or 0
        return entry
    if result.outcome is Outcome.REPLAYED:
        stored = StoredRequest(result.stored_method or "", result.stored_fingerprint or b"", result.stored_response)
        return stored_response(key, stored, loyalty_pb2.LedgerEntry)
    if result.outcome is Outcome.NO_ACCOUNT:
        raise not_found("account", ACCOUNT.format(account_id))
    if result.outcome is Outcome.ACCOUNT_CLOSED:
        raise ledger.account_closed(account_id)
    if result.outcome is Outcome.INSUFFICIENT_POINTS:
        raise ledger.insufficient_points(result.available_points or 0, -posting.points)
    raise RuntimeError(f"post_points answered {result.outcome}")


def _trace_id() -> str:
    """The trace the outbox row names, as the chassis' outbox writes it."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
