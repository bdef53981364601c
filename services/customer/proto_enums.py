"""Proto enums <-> the domain's StrEnums, for every part: a domain member's value is the proto name
without its prefix (`CustomerStatus.ACTIVE` <-> `CUSTOMER_STATUS_ACTIVE`)."""

from enum import StrEnum
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from chassis.errors import invalid_field

E = TypeVar("E", bound=StrEnum)


def enum_from_proto(value: int, wrapper: EnumTypeWrapper, prefix: str, target: type[E], field: str) -> E | None:
    """The domain member for a proto enum number; None for UNSPECIFIED; INVALID_ARGUMENT if unknown."""
    if value == 0:
        return None
    try:
        proto_name = wrapper.Name(value)
    except ValueError:
        raise invalid_field(field, f"{value} is not a known value") from None
    try:
        return target(proto_name.removeprefix(prefix))
    except ValueError:
        # A value the contract gained but this part does not take (yet) is bad input, not a crash.
        raise invalid_field(field, f"{proto_name} is not accepted here") from None


def enum_label(member: StrEnum | None, prefix: str) -> str:
    """The proto enum name of a domain member (`<prefix>UNSPECIFIED` for None); message constructors
    take the name as well as the number."""
    return prefix + ("UNSPECIFIED" if member is None else member.value)
