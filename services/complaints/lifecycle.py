"""A ticket's life (TMF621): its states, the verbs that move it, and the table of allowed moves.

The table is the whole rule: a verb not allowed from the ticket's state is FAILED_PRECONDITION
naming both states, so a caller sees at once why and where the ticket stands.
"""

from enum import StrEnum

from chassis.errors import FailedPrecondition


class State(StrEnum):
    """Where a ticket stands."""

    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    PENDING = "pending"
    HELD = "held"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    MERGED = "merged"


class Verb(StrEnum):
    """What moves a ticket: a custom method, or the service's own schedule."""

    START = "start"
    AWAIT_CUSTOMER = "awaitCustomer"
    HOLD = "hold"
    RESUME = "resume"
    REJECT = "reject"
    CANCEL = "cancel"
    RESOLVE = "resolve"
    ACCEPT = "accept"
    REOPEN = "reopen"
    EXPIRE_PENDING = "expirePending"
    CLOSE_AFTER_SILENCE = "closeAfterSilence"
    MERGE = "merge"


FINAL_STATES = frozenset({State.CLOSED, State.REJECTED, State.CANCELLED, State.MERGED})
"""States a ticket never leaves."""

OPEN_STATES = frozenset({State.ACKNOWLEDGED, State.IN_PROGRESS, State.PENDING, State.HELD})
"""States of a ticket still to be resolved: the backlog, the agents' load, the SLA scan."""

DEFAULT_PAUSED_STATES = frozenset({State.PENDING, State.HELD})
"""States whose time does not count against the SLA unless a plan says otherwise."""

TRANSITIONS: dict[tuple[State, Verb], State] = {
    (State.ACKNOWLEDGED, Verb.START): State.IN_PROGRESS,
    (State.ACKNOWLEDGED, Verb.REJECT): State.REJECTED,
    (State.ACKNOWLEDGED, Verb.CANCEL): State.CANCELLED,
    (State.IN_PROGRESS, Verb.AWAIT_CUSTOMER): State.PENDING,
    (State.PENDING, Verb.RESUME): State.IN_PROGRESS,
    (State.IN_PROGRESS, Verb.HOLD): State.HELD,
    (State.HELD, Verb.RESUME): State.IN_PROGRESS,
    (State.PENDING, Verb.EXPIRE_PENDING): State.CANCELLED,
    (State.IN_PROGRESS, Verb.RESOLVE): State.RESOLVED,
    (State.RESOLVED, Verb.ACCEPT): State.CLOSED,
    (State.RESOLVED, Verb.CLOSE_AFTER_SILENCE): State.CLOSED,
    (State.RESOLVED, Verb.REOPEN): State.IN_PROGRESS,
    **{(state, Verb.MERGE): State.MERGED for state in OPEN_STATES},
}
"""Every allowed move: (state, verb) -> the state after. Anything else is refused."""

# What each verb is meant to reach, so that a refusal can name where the caller wanted to go.
_TARGETS = {verb: target for (_, verb), target in TRANSITIONS.items()}


def next_state(current: State, verb: Verb) -> State:
    """The state `verb` moves a ticket in `current` to; FAILED_PRECONDITION TRANSITION_NOT_ALLOWED
    naming both states when the table has no such move."""
    after = TRANSITIONS.get((current, verb))
    if after is None:
        raise transition_not_allowed(current, _TARGETS[verb], verb)
    return after


def transition_not_allowed(current: State, wanted: State, verb: Verb) -> FailedPrecondition:
    """The refusal of a move the table does not allow."""
    return FailedPrecondition(
        "TRANSITION_NOT_ALLOWED",
        f"a ticket cannot go from {current} to {wanted} ({verb})",
        {"from_state": current.value, "to_state": wanted.value, "verb": verb.value},
    )


def is_open(state: State) -> bool:
    """Whether the ticket still waits for a resolution."""
    return state in OPEN_STATES
