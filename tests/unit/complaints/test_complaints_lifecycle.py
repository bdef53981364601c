"""The state table: every allowed move and every refused one."""

import itertools

import pytest

from chassis.errors import FailedPrecondition
from services.complaints.lifecycle import FINAL_STATES, TRANSITIONS, State, Verb, next_state

ALLOWED = {
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
    (State.ACKNOWLEDGED, Verb.MERGE): State.MERGED,
    (State.IN_PROGRESS, Verb.MERGE): State.MERGED,
    (State.PENDING, Verb.MERGE): State.MERGED,
    (State.HELD, Verb.MERGE): State.MERGED,
}


@pytest.mark.parametrize(("move", "after"), ALLOWED.items(), ids=lambda v: str(v))
def test_every_allowed_move_reaches_its_state(move: tuple[State, Verb], after: State):
    assert next_state(*move) is after


def test_the_table_holds_exactly_the_allowed_moves():
    assert TRANSITIONS == ALLOWED


@pytest.mark.parametrize(
    "move", [m for m in itertools.product(State, Verb) if m not in ALLOWED], ids=lambda v: f"{v[0]}-{v[1]}"
)
def test_every_other_move_is_failed_precondition_naming_from_and_to(move: tuple[State, Verb]):
    with pytest.raises(FailedPrecondition) as refused:
        next_state(*move)
    assert refused.value.reason == "TRANSITION_NOT_ALLOWED"
    assert refused.value.metadata["from_state"] == move[0].value
    assert refused.value.metadata["to_state"]


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_a_final_state_is_never_left(final: State):
    assert not [verb for verb in Verb if (final, verb) in TRANSITIONS]
