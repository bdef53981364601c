"""Consent per purpose (TMF644): what a decision needs, that only a granted purpose can be revoked, and
how the current state follows from the latest decision of each purpose."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import FailedPrecondition, InvalidArgument
from services.customer.customers.consent import (
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    ConsentRequest,
    PurposeState,
    check_consent_request,
    consent_state,
)
from services.customer.customers.profile import Channel

CUSTOMER_ID = uuid.UUID("00000000-0000-4000-8000-000000000042")
START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _record(purpose: ConsentPurpose, decision: ConsentDecision, record_id: int = 1) -> ConsentRecord:
    return ConsentRecord(
        id=record_id,
        customer_id=CUSTOMER_ID,
        purpose=purpose,
        decision=decision,
        channel=Channel.APP,
        record_time=START + timedelta(days=record_id),
        recorder="self-service",
    )


def _state(purpose: ConsentPurpose, decision: ConsentDecision | None) -> PurposeState:
    return PurposeState(purpose, _record(purpose, decision) if decision else None)


def _request(decision: ConsentDecision, purpose: ConsentPurpose = ConsentPurpose.MARKETING) -> ConsentRequest:
    return ConsentRequest(purpose=purpose, decision=decision, channel=Channel.CALL_CENTRE)


# check_consent_request -----------------------------------------------------------------------------


def test_revoking_a_purpose_never_decided_is_failed_precondition_consent_not_granted() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        check_consent_request(_request(ConsentDecision.REVOKED), None)
    assert raised.value.reason == "CONSENT_NOT_GRANTED"
    assert raised.value.metadata == {"purpose": "MARKETING"}


@pytest.mark.parametrize("latest", [None, ConsentDecision.DENIED, ConsentDecision.REVOKED])
def test_revoking_a_purpose_that_is_not_granted_is_failed_precondition(latest: ConsentDecision | None) -> None:
    current = _state(ConsentPurpose.PROFILING, latest)
    with pytest.raises(FailedPrecondition) as raised:
        check_consent_request(_request(ConsentDecision.REVOKED, ConsentPurpose.PROFILING), current)
    assert raised.value.reason == "CONSENT_NOT_GRANTED"


def test_revoking_a_granted_purpose_is_accepted() -> None:
    check_consent_request(_request(ConsentDecision.REVOKED), _state(ConsentPurpose.MARKETING, ConsentDecision.GRANTED))


@pytest.mark.parametrize("decision", [ConsentDecision.GRANTED, ConsentDecision.DENIED])
@pytest.mark.parametrize("latest", [None, *ConsentDecision])
def test_granting_or_denying_needs_no_earlier_decision(
    decision: ConsentDecision, latest: ConsentDecision | None
) -> None:
    check_consent_request(_request(decision), _state(ConsentPurpose.MARKETING, latest))


@pytest.mark.parametrize(
    ("request_", "missing"),
    [
        (ConsentRequest(None, ConsentDecision.GRANTED, Channel.WEB), ["purpose"]),
        (ConsentRequest(ConsentPurpose.MARKETING, None, Channel.WEB), ["decision"]),
        (ConsentRequest(ConsentPurpose.MARKETING, ConsentDecision.GRANTED, None), ["channel"]),
        (ConsentRequest(None, None, None), ["purpose", "decision", "channel"]),
    ],
)
def test_missing_parts_of_a_decision_are_invalid_argument_naming_each(
    request_: ConsentRequest, missing: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_consent_request(request_, None)
    assert [v.field for v in raised.value.violations] == missing


def test_an_accepted_decision_comes_back_with_every_field_set() -> None:
    checked = check_consent_request(ConsentRequest(ConsentPurpose.PROFILING, ConsentDecision.DENIED, Channel.APP), None)
    assert (checked.purpose, checked.decision, checked.channel) == (
        ConsentPurpose.PROFILING,
        ConsentDecision.DENIED,
        Channel.APP,
    )


# consent_state -------------------------------------------------------------------------------------


def test_state_lists_every_purpose_in_purpose_order() -> None:
    assert [entry.purpose for entry in consent_state([]).purposes] == list(ConsentPurpose)


def test_purpose_never_decided_has_no_latest_record_and_is_not_permitted() -> None:
    state = consent_state([_record(ConsentPurpose.MARKETING, ConsentDecision.GRANTED)])
    profiling = state.purposes[list(ConsentPurpose).index(ConsentPurpose.PROFILING)]
    assert (profiling.latest, profiling.permitted) == (None, False)


def test_purpose_whose_latest_decision_is_granted_is_permitted() -> None:
    [marketing, *_] = consent_state([_record(ConsentPurpose.MARKETING, ConsentDecision.GRANTED)]).purposes
    assert marketing.permitted


@pytest.mark.parametrize("decision", [ConsentDecision.DENIED, ConsentDecision.REVOKED])
def test_purpose_whose_latest_decision_is_denied_or_revoked_is_not_permitted(decision: ConsentDecision) -> None:
    [marketing, *_] = consent_state([_record(ConsentPurpose.MARKETING, decision)]).purposes
    assert not marketing.permitted


def test_each_purpose_takes_its_own_latest_decision() -> None:
    records = [
        _record(ConsentPurpose.PARTNER_SHARING, ConsentDecision.DENIED, record_id=3),
        _record(ConsentPurpose.MARKETING, ConsentDecision.REVOKED, record_id=5),
        _record(ConsentPurpose.PROFILING, ConsentDecision.GRANTED, record_id=4),
    ]
    state = consent_state(records)
    assert {entry.purpose: entry.latest for entry in state.purposes} == {r.purpose: r for r in records}
    assert [entry.permitted for entry in state.purposes] == [False, True, False]


def test_later_decision_on_a_purpose_replaces_an_earlier_one() -> None:
    history = [
        _record(ConsentPurpose.MARKETING, ConsentDecision.GRANTED, record_id=1),
        _record(ConsentPurpose.MARKETING, ConsentDecision.REVOKED, record_id=2),
    ]
    [marketing, *_] = consent_state(history).purposes
    assert marketing.latest == history[1]
    assert not marketing.permitted
