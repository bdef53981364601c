"""What each kind of caller sees of an answer: partners get phone numbers partly hidden and no
birth date, tax id or operator-internal fields; customers see only the segments the operator shows
them. Answers to employees pass through as bytes, untouched."""

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from crm.complaints.v1 import complaint_pb2, complaint_service_pb2
from crm.customer.v1 import segments_pb2
from gateway.policy import Policy

View = Callable[[Message], None]
"""Changes an answer in place before the caller receives it."""

_VISIBLE_DIGITS_AT_START = 6  # "+99890": the country and the operator's network code
_VISIBLE_DIGITS_AT_END = 2


def masked_phone_number(number: str) -> str:
    """`+998901234567` as `+99890*****67`: the network stays readable, the subscriber does not."""
    if len(number) <= _VISIBLE_DIGITS_AT_START + _VISIBLE_DIGITS_AT_END:
        return "*" * max(len(number) - _VISIBLE_DIGITS_AT_END, 0) + number[-_VISIBLE_DIGITS_AT_END:]
    hidden = len(number) - _VISIBLE_DIGITS_AT_START - _VISIBLE_DIGITS_AT_END
    return number[:_VISIBLE_DIGITS_AT_START] + "*" * hidden + number[-_VISIBLE_DIGITS_AT_END:]


class RetailerView:
    """Clears and masks the policy's fields, wherever they sit in an answer."""

    def __init__(self, policy: Policy) -> None:
        self._hidden = policy.retailer_hidden_fields
        self._masked = policy.retailer_masked_phone_fields
        self._concerned: dict[str, bool] = {}

    def apply(self, message: Message) -> None:
        """Masks `message` in place."""
        if not self.concerns(message.DESCRIPTOR):
            return
        for field, value in message.ListFields():
            if field.full_name in self._hidden:
                message.ClearField(field.name)
            elif field.full_name in self._masked:
                if field.is_repeated:
                    masked = [masked_phone_number(item) for item in value]
                    del value[:]
                    value.extend(masked)
                else:
                    setattr(message, field.name, masked_phone_number(value))
            elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
                for item in value if field.is_repeated else [value]:
                    self.apply(item)

    def concerns(self, descriptor: Descriptor | Any, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a message of this type can hold a field to hide or mask (known per type, once)."""
        name = descriptor.full_name
        if name not in self._concerned:
            if name in seen:
                return False
            self._concerned[name] = any(
                field.full_name in self._hidden
                or field.full_name in self._masked
                or (field.message_type is not None and self.concerns(field.message_type, seen | {name}))
                for field in descriptor.fields
            )
        return self._concerned[name]


class CustomerView:
    """Keeps only the segments a customer may see of their own and none of the operator's scores,
    and only the notes of their complaints that are written for them."""

    ANSWERS = frozenset({"crm.customer.v1.CustomerSegments", "crm.complaints.v1.ListNotesResponse"})
    """The answers a customer sees less of; every other passes unchanged."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def apply(self, message: Message) -> None:
        """Filters `message` in place when it is one of `ANSWERS`."""
        if isinstance(message, complaint_service_pb2.ListNotesResponse):
            for_customer = [n for n in message.notes if n.visibility == complaint_pb2.NOTE_VISIBILITY_CUSTOMER_FACING]
            del message.notes[:]
            message.notes.extend(for_customer)
            return
        if not isinstance(message, segments_pb2.CustomerSegments):
            return
        shown = [m for m in message.memberships if self._policy.segment_visible_to_customer(_segment_id(m.segment))]
        del message.memberships[:]
        message.memberships.extend(shown)
        message.ClearField("churn_risk_score")
        message.ClearField("churn_factors")


def _segment_id(name: str) -> str:
    return name.removeprefix("segments/")
