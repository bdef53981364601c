"""The points ledger's rules, without gRPC or a database, and a state machine that runs random
sequences of earn, redeem, goodwill and reverse against a simple model of what must hold."""

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chassis.errors import FailedPrecondition, InvalidArgument
from services.loyalty import ledger
from services.loyalty.ledger import Account, Entry, EntryKind

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _post(account: Account, posting: ledger.Posting) -> tuple[Account, Entry]:
    return ledger.post(account, posting, actor="agent-1", now=NOW)


def test_an_earning_credits_the_balance_and_numbers_the_entry():
    account, entry = _post(Account(id=uuid.uuid4()), ledger.earning(120, "spend", "invoices/7"))
    assert (account.balance, account.lifetime_earned, account.entry_count) == (120, 120, 1)
    assert (entry.number, entry.kind, entry.points, entry.balance_after) == (1, EntryKind.EARN, 120, 120)
    assert (entry.source_reference, entry.actor) == ("invoices/7", "agent-1")


def test_a_redemption_debits_the_balance():
    account, _ = _post(Account(id=uuid.uuid4()), ledger.earning(100, "spend"))
    account, entry = _post(account, ledger.redemption(60, "voucher"))
    assert (entry.points, account.balance, account.lifetime_redeemed) == (-60, 40, 60)


def test_redeem_more_than_balance_is_failed_precondition():
    account, _ = _post(Account(id=uuid.uuid4()), ledger.earning(10, "spend"))
    with pytest.raises(FailedPrecondition) as raised:
        _post(account, ledger.redemption(11, "voucher"))
    assert raised.value.reason == "INSUFFICIENT_POINTS"


@pytest.mark.parametrize("points", [0, -1, ledger.MAX_POINTS_PER_ENTRY + 1])
def test_points_outside_the_allowed_range_are_invalid(points: int):
    with pytest.raises(InvalidArgument) as raised:
        ledger.earning(points, "spend")
    assert [v.field for v in raised.value.violations] == ["points"]


def test_goodwill_without_a_reason_is_invalid():
    with pytest.raises(InvalidArgument) as raised:
        ledger.goodwill(10, "   ")
    assert [v.field for v in raised.value.violations] == ["reason"]


def test_every_bad_field_is_named_at_once():
    with pytest.raises(InvalidArgument) as raised:
        ledger.redemption(0, "", "x" * 201)
    assert [v.field for v in raised.value.violations] == ["points", "reason", "source_reference"]


def test_a_reversal_is_the_exact_opposite_of_its_entry():
    account, earned = _post(Account(id=uuid.uuid4()), ledger.earning(30, "spend"))
    account, reversal = _post(account, ledger.reversal(earned, already_reversed=False))
    assert (reversal.kind, reversal.points, reversal.reversed_entry) == (EntryKind.REVERSE, -30, 1)
    assert (account.balance, account.lifetime_earned) == (0, 0)


def test_a_reversal_cannot_be_reversed_and_nothing_is_reversed_twice():
    account, earned = _post(Account(id=uuid.uuid4()), ledger.earning(30, "spend"))
    _, reversal = _post(account, ledger.reversal(earned, already_reversed=False))
    with pytest.raises(FailedPrecondition) as raised:
        ledger.reversal(reversal, already_reversed=False)
    assert raised.value.reason == "NOT_REVERSIBLE"
    with pytest.raises(FailedPrecondition) as raised:
        ledger.reversal(earned, already_reversed=True)
    assert raised.value.reason == "ALREADY_REVERSED"


class LedgerMachine(RuleBasedStateMachine):
    """Posts random operations through the ledger's rules and keeps, beside them, a plain model: the
    list of accepted amounts and the set of reversed entries."""

    def __init__(self) -> None:
        super().__init__()
        self.account = Account(id=uuid.uuid4())
        self.entries: list[Entry] = []
        self.model_amounts: list[int] = []
        self.model_reversed: set[int] = set()

    def _apply(self, posting: ledger.Posting) -> None:
        expected_balance = sum(self.model_amounts) + posting.points
        try:
            self.account, entry = _post(self.account, posting)
        except FailedPrecondition as error:
            assert error.reason == "INSUFFICIENT_POINTS"
            assert expected_balance < 0
            return
        assert expected_balance >= 0
        assert entry.number == len(self.entries) + 1
        self.entries.append(entry)
        self.model_amounts.append(posting.points)

    @rule(points=st.integers(1, 500))
    def earn(self, points: int) -> None:
        self._apply(ledger.earning(points, "usage"))

    @rule(points=st.integers(1, 800))
    def redeem(self, points: int) -> None:
        self._apply(ledger.redemption(points, "reward"))

    @rule(points=st.integers(1, 300))
    def grant_goodwill(self, points: int) -> None:
        self._apply(ledger.goodwill(points, "complaint"))

    @precondition(lambda self: bool(self.entries))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.entries))
        try:
            posting = ledger.reversal(target, already_reversed=target.number in self.model_reversed)
        except FailedPrecondition as error:
            if error.reason == "NOT_REVERSIBLE":
                assert target.kind is EntryKind.REVERSE
            else:
                assert error.reason == "ALREADY_REVERSED"
                assert target.number in self.model_reversed
            return
        assert target.kind is not EntryKind.REVERSE and target.number not in self.model_reversed
        count = len(self.entries)
        self._apply(posting)
        if len(self.entries) > count:
            self.model_reversed.add(target.number)

    @invariant()
    def balance_is_never_negative(self) -> None:
        assert self.account.balance >= 0

    @invariant()
    def balance_is_the_sum_of_the_entries(self) -> None:
        assert self.account.balance == sum(e.points for e in self.entries) == sum(self.model_amounts)
        assert self.account.entry_count == len(self.entries)
        if self.entries:
            assert self.entries[-1].balance_after == self.account.balance

    @invariant()
    def each_entry_is_reversed_at_most_once(self) -> None:
        reversed_numbers = [e.reversed_entry for e in self.entries if e.kind is EntryKind.REVERSE]
        assert len(reversed_numbers) == len(set(reversed_numbers))
        assert set(reversed_numbers) == self.model_reversed

    @invariant()
    def lifetime_totals_are_net_of_reversals(self) -> None:
        by_number = {e.number: e for e in self.entries}

        def counted_kind(entry: Entry) -> EntryKind:
            return by_number[entry.reversed_entry].kind if entry.reversed_entry else entry.kind

        earned = sum(e.points for e in self.entries if counted_kind(e) in (EntryKind.EARN, EntryKind.GOODWILL))
        redeemed = -sum(e.points for e in self.entries if counted_kind(e) is EntryKind.REDEEM)
        assert (self.account.lifetime_earned, self.account.lifetime_redeemed) == (earned, redeemed)


TestLedgerStateMachine = LedgerMachine.TestCase
TestLedgerStateMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
