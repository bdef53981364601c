"""Translation between the customer contract's messages and the domain's types, both ways.

Reading a message never decides validity beyond what the wire can express: unknown enum numbers
and malformed resource names are INVALID_ARGUMENT here; every other rule lives in the domain.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from chassis.errors import invalid_field
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2
from services.customer import domain

E = TypeVar("E", bound=StrEnum)


# Names ---------------------------------------------------------------------------------------------


def customer_name(customer_id: uuid.UUID) -> str:
    """`customers/{customer}`."""
    return f"customers/{customer_id}"


def subscription_name(customer_id: uuid.UUID, subscription_id: uuid.UUID) -> str:
    """`customers/{customer}/subscriptions/{subscription}`."""
    return f"customers/{customer_id}/subscriptions/{subscription_id}"


def parse_customer_name(name: str, field: str = "name") -> uuid.UUID:
    """The id in `customers/{customer}`; INVALID_ARGUMENT naming `field` when malformed."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "customers":
        raise invalid_field(field, f"must look like customers/{{customer}}, got {name!r}")
    return _uuid(parts[1], field, name, "customer")


def parse_subscription_name(name: str, field: str = "name") -> tuple[uuid.UUID, uuid.UUID]:
    """The ids in `customers/{customer}/subscriptions/{subscription}`."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "customers" or parts[2] != "subscriptions":
        raise invalid_field(
            field, f"must look like customers/{{customer}}/subscriptions/{{subscription}}, got {name!r}"
        )
    return _uuid(parts[1], field, name, "customer"), _uuid(parts[3], field, name, "subscription")


def parse_consent_state_name(name: str) -> uuid.UUID:
    """The customer id in `customers/{customer}/consentState`."""
    parent, _, leaf = name.rpartition("/")
    if leaf != "consentState":
        raise invalid_field("name", f"must look like customers/{{customer}}/consentState, got {name!r}")
    return parse_customer_name(parent, "name")


def _uuid(text: str, field: str, name: str, resource_type: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise invalid_field(field, f"has no valid {resource_type} id: {name!r}") from None


# Enums ---------------------------------------------------------------------------------------------


def enum_from_proto(value: int, wrapper: EnumTypeWrapper, prefix: str, target: type[E], field: str) -> E | None:
    """The domain member for a proto enum number; None for UNSPECIFIED; INVALID_ARGUMENT if unknown."""
    if value == 0:
        return None
    try:
        proto_name = wrapper.Name(value)
    except ValueError:
        raise invalid_field(field, f"{value} is not a known value") from None
    return target(proto_name.removeprefix(prefix))


def enum_to_proto(member: StrEnum | None, wrapper: EnumTypeWrapper, prefix: str) -> int:
    """The proto enum number of a domain member (0 for None)."""
    return 0 if member is None else wrapper.Value(prefix + member.value)


# Dates and times -----------------------------------------------------------------------------------


def date_from_proto(value: date_pb2.Date, field: str) -> date | None:
    """A calendar date; None when unset (all zero)."""
    if value.year == 0 and value.month == 0 and value.day == 0:
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise invalid_field(field, "is not a valid calendar date") from None


def date_to_proto(value: date | None) -> date_pb2.Date | None:
    """The proto Date, or None."""
    return None if value is None else date_pb2.Date(year=value.year, month=value.month, day=value.day)


def timestamp(value: datetime | None) -> Timestamp | None:
    """The proto Timestamp, or None."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


# Customers -----------------------------------------------------------------------------------------


def profile_from_proto(message: customer_pb2.Customer, path: str = "customer") -> domain.CustomerProfile:
    """The writable part of a Customer message; the party is required."""
    party = _party_from_proto(message, path)
    if party is None:
        raise invalid_field(f"{path}.individual", "set either individual or organization")
    return domain.CustomerProfile(
        party=party,
        contact_media=tuple(_medium_from_proto(m) for m in message.contact_media),
        acquisition_channel=channel_from_proto(message.acquisition_channel, f"{path}.acquisition_channel"),
        retailer_id=message.retailer_id,
    )


def profile_patch_from_proto(message: customer_pb2.Customer, path: str = "customer") -> domain.ProfilePatch:
    """The new values of an UpdateCustomer request; the party may be absent."""
    return domain.ProfilePatch(
        party=_party_from_proto(message, path),
        contact_media=tuple(_medium_from_proto(m) for m in message.contact_media),
        acquisition_channel=channel_from_proto(message.acquisition_channel, f"{path}.acquisition_channel"),
        retailer_id=message.retailer_id,
    )


def _party_from_proto(message: customer_pb2.Customer, path: str) -> domain.Party | None:
    kind = message.WhichOneof("party")
    if kind == "individual":
        person = message.individual
        return domain.Individual(
            given_name=person.given_name,
            family_name=person.family_name,
            middle_name=person.middle_name,
            birth_date=date_from_proto(person.birth_date, f"{path}.individual.birth_date"),
            gender=enum_from_proto(
                person.gender, customer_pb2.Gender, "GENDER_", domain.Gender, f"{path}.individual.gender"
            ),
            preferred_language=person.preferred_language,
        )
    if kind == "organization":
        org = message.organization
        return domain.Organization(
            legal_name=org.legal_name,
            trading_name=org.trading_name,
            tax_id=org.tax_id,
            kind=enum_from_proto(
                org.kind,
                customer_pb2.OrganizationKind,
                "ORGANIZATION_KIND_",
                domain.OrganizationKind,
                f"{path}.organization.kind",
            ),
        )
    return None


def _medium_from_proto(message: customer_pb2.ContactMedium) -> domain.ContactMedium:
    kind = message.WhichOneof("medium")
    if kind == "phone_number":
        return domain.ContactMedium(phone_number=message.phone_number, preferred=message.preferred)
    if kind == "email_address":
        return domain.ContactMedium(email_address=message.email_address, preferred=message.preferred)
    if kind == "postal_address":
        address = message.postal_address
        return domain.ContactMedium(
            postal_address=domain.PostalAddress(
                country_code=address.country_code,
                region=address.region,
                city=address.city,
                address_lines=tuple(address.address_lines),
                postal_code=address.postal_code,
            ),
            preferred=message.preferred,
        )
    return domain.ContactMedium(preferred=message.preferred)


def channel_from_proto(value: int, field: str) -> domain.Channel | None:
    """A channel, None when unspecified."""
    return enum_from_proto(value, common_pb2.Channel, "CHANNEL_", domain.Channel, field)


def status_from_proto(value: int, field: str) -> domain.CustomerStatus | None:
    """A customer status, None when unspecified."""
    return enum_from_proto(value, customer_pb2.CustomerStatus, "CUSTOMER_STATUS_", domain.CustomerStatus, field)


def churn_reason_from_proto(value: int, field: str) -> domain.ChurnReason | None:
    """A churn reason, None when unspecified."""
    return enum_from_proto(value, customer_pb2.ChurnReason, "CHURN_REASON_", domain.ChurnReason, field)


def customer_to_proto(customer: domain.Customer) -> customer_pb2.Customer:
    """The Customer message for a stored customer."""
    profile = customer.profile
    message = customer_pb2.Customer(
        name=customer_name(customer.id),
        contact_media=[_medium_to_proto(m) for m in profile.contact_media],
        status=enum_to_proto(customer.status, customer_pb2.CustomerStatus, "CUSTOMER_STATUS_"),
        churn_reason=enum_to_proto(customer.churn_reason, customer_pb2.ChurnReason, "CHURN_REASON_"),
        churn_detail=customer.churn_detail,
        acquisition_channel=enum_to_proto(profile.acquisition_channel, common_pb2.Channel, "CHANNEL_"),
        retailer_id=profile.retailer_id,
        create_time=timestamp(customer.create_time),
        creator=customer.creator,
        update_time=timestamp(customer.update_time),
        updater=customer.updater,
        etag=etag(customer.version),
    )
    party = profile.party
    if isinstance(party, domain.Individual):
        message.individual.CopyFrom(
            customer_pb2.Individual(
                given_name=party.given_name,
                family_name=party.family_name,
                middle_name=party.middle_name,
                birth_date=date_to_proto(party.birth_date),
                gender=enum_to_proto(party.gender, customer_pb2.Gender, "GENDER_"),
                preferred_language=party.preferred_language,
            )
        )
    else:
        message.organization.CopyFrom(
            customer_pb2.Organization(
                legal_name=party.legal_name,
                trading_name=party.trading_name,
                tax_id=party.tax_id,
                kind=enum_to_proto(party.kind, customer_pb2.OrganizationKind, "ORGANIZATION_KIND_"),
            )
        )
    return message


def _medium_to_proto(medium: domain.ContactMedium) -> customer_pb2.ContactMedium:
    if medium.phone_number is not None:
        return customer_pb2.ContactMedium(phone_number=medium.phone_number, preferred=medium.preferred)
    if medium.email_address is not None:
        return customer_pb2.ContactMedium(email_address=medium.email_address, preferred=medium.preferred)
    address = medium.postal_address or domain.PostalAddress()
    return customer_pb2.ContactMedium(
        postal_address=common_pb2.PostalAddress(
            country_code=address.country_code,
            region=address.region,
            city=address.city,
            address_lines=list(address.address_lines),
            postal_code=address.postal_code,
        ),
        preferred=medium.preferred,
    )


def etag(version: int) -> str:
    """The etag of a version; opaque to clients."""
    return f'W/"{version}"'


def version_from_etag(value: str, field: str = "etag") -> int | None:
    """The version an etag stands for; None when no etag was sent."""
    if not value:
        return None
    digits = value.removeprefix('W/"').removesuffix('"')
    if not digits.isdigit():
        raise invalid_field(field, "is not an etag this service issued")
    return int(digits)


# Subscriptions -------------------------------------------------------------------------------------


def subscription_from_proto(message: customer_pb2.Subscription, customer_id: uuid.UUID) -> domain.Subscription:
    """A new line from a Subscription message (status defaults to ACTIVE)."""
    return domain.Subscription(
        id=uuid.uuid4(),
        customer_id=customer_id,
        msisdn=message.msisdn,
        tariff_plan_id=message.tariff_plan_id,
        activation_date=date_from_proto(message.activation_date, "subscription.activation_date"),
        status=_subscription_status(message.status) or domain.SubscriptionStatus.ACTIVE,
        purpose=_subscription_purpose(message.purpose),
        home_region=message.home_region,
    )


def subscription_patch_from_proto(message: customer_pb2.Subscription) -> domain.SubscriptionPatch:
    """The new values of an UpdateSubscription request."""
    return domain.SubscriptionPatch(
        tariff_plan_id=message.tariff_plan_id,
        status=_subscription_status(message.status),
        purpose=_subscription_purpose(message.purpose),
        home_region=message.home_region,
    )


def _subscription_status(value: int) -> domain.SubscriptionStatus | None:
    return enum_from_proto(
        value, customer_pb2.SubscriptionStatus, "SUBSCRIPTION_STATUS_", domain.SubscriptionStatus, "subscription.status"
    )


def _subscription_purpose(value: int) -> domain.SubscriptionPurpose | None:
    return enum_from_proto(
        value,
        customer_pb2.SubscriptionPurpose,
        "SUBSCRIPTION_PURPOSE_",
        domain.SubscriptionPurpose,
        "subscription.purpose",
    )


def subscription_to_proto(subscription: domain.Subscription) -> customer_pb2.Subscription:
    """The Subscription message of a stored line."""
    return customer_pb2.Subscription(
        name=subscription_name(subscription.customer_id, subscription.id),
        msisdn=subscription.msisdn,
        tariff_plan_id=subscription.tariff_plan_id,
        activation_date=date_to_proto(subscription.activation_date),
        status=enum_to_proto(subscription.status, customer_pb2.SubscriptionStatus, "SUBSCRIPTION_STATUS_"),
        purpose=enum_to_proto(subscription.purpose, customer_pb2.SubscriptionPurpose, "SUBSCRIPTION_PURPOSE_"),
        home_region=subscription.home_region,
        create_time=timestamp(subscription.create_time),
        update_time=timestamp(subscription.update_time),
        etag=etag(subscription.version),
    )


# Consent -------------------------------------------------------------------------------------------


def consent_request_from_proto(purpose: int, decision: int, channel: int) -> domain.ConsentRequest:
    """A decision to record."""
    return domain.ConsentRequest(
        purpose=enum_from_proto(
            purpose, customer_pb2.ConsentPurpose, "CONSENT_PURPOSE_", domain.ConsentPurpose, "purpose"
        ),
        decision=enum_from_proto(
            decision, customer_pb2.ConsentDecision, "CONSENT_DECISION_", domain.ConsentDecision, "decision"
        ),
        channel=channel_from_proto(channel, "channel"),
    )


def consent_record_to_proto(record: domain.ConsentRecord) -> customer_pb2.ConsentRecord:
    """The ConsentRecord message of a stored decision."""
    return customer_pb2.ConsentRecord(
        name=f"{customer_name(record.customer_id)}/consentRecords/{record.id}",
        purpose=enum_to_proto(record.purpose, customer_pb2.ConsentPurpose, "CONSENT_PURPOSE_"),
        decision=enum_to_proto(record.decision, customer_pb2.ConsentDecision, "CONSENT_DECISION_"),
        channel=enum_to_proto(record.channel, common_pb2.Channel, "CHANNEL_"),
        record_time=timestamp(record.record_time),
        recorder=record.recorder,
    )


def consent_state_to_proto(customer_id: uuid.UUID, state: domain.ConsentState) -> customer_pb2.ConsentState:
    """The ConsentState message."""
    return customer_pb2.ConsentState(
        name=f"{customer_name(customer_id)}/consentState",
        purposes=[
            customer_pb2.PurposeConsent(
                purpose=enum_to_proto(entry.purpose, customer_pb2.ConsentPurpose, "CONSENT_PURPOSE_"),
                decision=enum_to_proto(
                    entry.latest.decision if entry.latest else None,
                    customer_pb2.ConsentDecision,
                    "CONSENT_DECISION_",
                ),
                permitted=entry.permitted,
                latest_record=consent_record_to_proto(entry.latest) if entry.latest else None,
            )
            for entry in state.purposes
        ],
    )
