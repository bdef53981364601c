"""Admission of calls into a server under load: a bounded number at work, a short fair queue, and
early refusal of what cannot be served in time.

A call is admitted at once while fewer than `max_concurrent` are at work. Otherwise it waits in its
caller's queue for at most `max_queue_wait_seconds` (and never past its own deadline); a freed slot
goes to the callers in turn (round robin), so a caller that floods the server waits behind its own
calls while a quiet caller's call is next. When the queues are full, the newest call of the caller
with the most calls waiting is refused first. Every refusal is RESOURCE_EXHAUSTED at once, before
any work; a call whose deadline leaves too little time is DEADLINE_EXCEEDED at once.
"""

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass

from chassis.errors import DeadlineExceeded, ResourceExhausted


@dataclass(frozen=True, kw_only=True)
class AdmissionLimits:
    """How much a server takes on at once."""

    max_concurrent: int
    """Calls at work at once."""
    max_queued: int
    """Calls waiting for a slot, all callers together."""
    max_queue_wait_seconds: float
    """Longest a call waits for a slot before it is refused."""
    min_remaining_seconds: float
    """A call arriving with less time left than this is refused at once: it could not finish."""


class Admission:
    """Hands out work slots; `admit` before the work, `release` after it."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self._limits = limits
        self._at_work = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._queued = 0

    @property
    def at_work(self) -> int:
        """Calls admitted and not yet released."""
        return self._at_work

    @property
    def queued(self) -> int:
        """Calls waiting for a slot."""
        return self._queued

    async def admit(self, caller: str, time_remaining: float | None) -> None:
        """Returns once the call may start; raises ResourceExhausted or DeadlineExceeded when it may not."""
        if time_remaining is not None and time_remaining < self._limits.min_remaining_seconds:
            raise DeadlineExceeded("DEADLINE_TOO_SHORT", "the call's deadline leaves no time to serve it")
        if self._at_work < self._limits.max_concurrent and not self._queued:
            self._at_work += 1
            return
        if self._queued >= self._limits.max_queued:
            self._make_room_for(caller)
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(caller, deque()).append(ticket)
        self._queued += 1
        wait = self._limits.max_queue_wait_seconds
        if time_remaining is not None:
            wait = min(wait, time_remaining - self._limits.min_remaining_seconds)
        try:
            await asyncio.wait_for(asyncio.shield(ticket), timeout=max(wait, 0.0))
        except TimeoutError:
            if ticket.done() and not ticket.cancelled() and ticket.exception() is None:
                return  # the slot came as the wait ended: keep it
            self._forget(caller, ticket)
            raise _overloaded() from None
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled() and ticket.exception() is None:
                self.release()  # the slot was handed over as the caller went away
            else:
                self._forget(caller, ticket)
            raise

    def release(self) -> None:
        """Ends a call's work; its slot goes to the next caller in turn."""
        while self._waiting:
            caller, tickets = next(iter(self._waiting.items()))
            ticket = tickets.popleft()
            self._queued -= 1
            if tickets:
                self._waiting.move_to_end(caller)
            else:
                del self._waiting[caller]
            if not ticket.done():
                ticket.set_result(None)  # the slot passes on: at_work stays the same
                return
        self._at_work -= 1

    def _make_room_for(self, caller: str) -> None:
        """Refuses the newest waiting call of the caller with most waiting, unless that is this caller."""
        heaviest = max(self._waiting, key=lambda name: len(self._waiting[name]))
        if heaviest == caller or len(self._waiting[heaviest]) <= len(self._waiting.get(caller, ())):
            raise _overloaded()
        refused = self._waiting[heaviest].pop()
        self._queued -= 1
        if not self._waiting[heaviest]:
            del self._waiting[heaviest]
        if not refused.done():
            refused.set_exception(_overloaded())

    def _forget(self, caller: str, ticket: asyncio.Future[None]) -> None:
        tickets = self._waiting.get(caller)
        if tickets is not None and ticket in tickets:
            tickets.remove(ticket)
            self._queued -= 1
            if not tickets:
                del self._waiting[caller]


def _overloaded() -> ResourceExhausted:
    return ResourceExhausted("SERVER_OVERLOADED", "the server is at capacity; retry shortly")
