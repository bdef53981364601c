"""Translation between the customer contract's messages and the customers part's types, both ways.

Reading a message never decides validity beyond what the wire can express: unknown enum numbers
and malformed resource names are INVALID_ARGUMENT here; every other rule lives in the rules modules.
"""

import uuid

from chassis.errors import invalid_field
from chassis.etags import etag
from chassis.names import CUSTOMER, SUBSCRIPTION, ResourcePattern
from chassis.wellknown import date_from_proto, date_to_proto, timestamp_to_proto
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2
from services.customer.customers.consent import (
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    ConsentRequest,
    ConsentState,
)
from services.customer.customers.lifecycle import ChurnReason, Customer, CustomerStatus
from services.customer.customers.lines import (
    Subscription,
    SubscriptionPatch,
    SubscriptionPurpose,
    SubscriptionStatus,
)
from services.customer.customers.profile import (
    Channel,
    ContactMedium,
    CustomerProfile,
    Gender,
    Individual,
    Organization,
    OrganizationKind,
    Party,
    PostalAddress,
    ProfilePatch,
)
from services.customer.proto_enums import enum_from_proto, enum_label

CONSENT_STATE = ResourcePattern("customers/{customer}/consentState")
"""A customer's current consent, purpose by purpose."""
CONSENT_RECORD = ResourcePattern("customers/{customer}/consentRecords/{consent_record}")
"""One decision in a customer's consent history."""


# Customers -----------------------------------------------------------------------------------------


def profile_from_proto(message: customer_pb2.Customer, path: str = "customer") -> CustomerProfile:
    """The writable part of a Customer message; the party is required."""
    party = _party_from_proto(message, path)
    if party is None:
        raise invalid_field(f"{path}.individual", "set either individual or organization")
    return CustomerProfile(
        party=party,
        contact_media=tuple(_medium_from_proto(m) for m in message.contact_media),
        acquisition_channel=channel_from_proto(message.acquisition_channel, f"{path}.acquisition_channel"),
        retailer_id=message.retailer_id,
    )


def profile_patch_from_proto(message: customer_pb2.Customer, path: str = "customer") -> ProfilePatch:
    """The new values of an UpdateCustomer request; the party may be absent."""
    return ProfilePatch(
        party=_party_from_proto(message, path),
        contact_media=tuple(_medium_from_proto(m) for m in message.contact_media),
        acquisition_channel=channel_from_proto(message.acquisition_channel, f"{path}.acquisition_channel"),
        retailer_id=message.retailer_id,
    )


def _party_from_proto(message: customer_pb2.Customer, path: str) -> Party | None:
    kind = message.WhichOneof("party")
    if kind == "individual":
        person = message.individual
        return Individual(
            given_name=person.given_name,
            family_name=person.family_name,
            middle_name=person.middle_name,
            birth_date=date_from_proto(person.birth_date, f"{path}.individual.birth_date"),
            gender=enum_from_proto(person.gender, customer_pb2.Gender, "GENDER_", Gender, f"{path}.individual.gender"),
            preferred_language=person.preferred_language,
        )
    if kind == "organization":
        org = message.organization
        return Organization(
            legal_name=org.legal_name,
            trading_name=org.trading_name,
            tax_id=org.tax_id,
            kind=enum_from_proto(
                org.kind,
                customer_pb2.OrganizationKind,
                "ORGANIZATION_KIND_",
                OrganizationKind,
                f"{path}.organization.kind",
            ),
        )
    return None


def _medium_from_proto(message: customer_pb2.ContactMedium) -> ContactMedium:
    kind = message.WhichOneof("medium")
    if kind == "phone_number":
        return ContactMedium(phone_number=message.phone_number, preferred=message.preferred)
    if kind == "email_address":
        return ContactMedium(email_address=message.email_address, preferred=message.preferred)
    if kind == "postal_address":
        address = message.postal_address
        return ContactMedium(
            postal_address=PostalAddress(
                country_code=address.country_code,
                region=address.region,
                city=address.city,
                address_lines=tuple(address.address_lines),
                postal_code=address.postal_code,
            ),
            preferred=message.preferred,
        )
    return ContactMedium(preferred=message.preferred)


def channel_from_proto(value: int, field: str) -> Channel | None:
    """A channel, None when unspecified."""
    return enum_from_proto(value, common_pb2.Channel, "CHANNEL_", Channel, field)


def status_from_proto(value: int, field: str) -> CustomerStatus | None:
    """A customer status, None when unspecified."""
    return enum_from_proto(value, customer_pb2.CustomerStatus, "CUSTOMER_STATUS_", CustomerStatus, field)


def churn_reason_from_proto(value: int, field: str) -> ChurnReason | None:
    """A churn reason, None when unspecified."""
    return enum_from_proto(value, customer_pb2.ChurnReason, "CHURN_REASON_", ChurnReason, field)


def customer_to_proto(customer: Customer) -> customer_pb2.Customer:
    """The Customer message for a stored customer."""
    profile = customer.profile
    message = customer_pb2.Customer(
        name=CUSTOMER.format(customer.id),
        contact_media=[_medium_to_proto(m) for m in profile.contact_media],
        status=enum_label(customer.status, "CUSTOMER_STATUS_"),
        churn_reason=enum_label(customer.churn_reason, "CHURN_REASON_"),
        churn_detail=customer.churn_detail,
        acquisition_channel=enum_label(profile.acquisition_channel, "CHANNEL_"),
        retailer_id=profile.retailer_id,
        create_time=timestamp_to_proto(customer.create_time),
        creator=customer.creator,
        update_time=timestamp_to_proto(customer.update_time),
        updater=customer.updater,
        etag=etag(customer.version),
    )
    party = profile.party
    if isinstance(party, Individual):
        message.individual.CopyFrom(
            customer_pb2.Individual(
                given_name=party.given_name,
                family_name=party.family_name,
                middle_name=party.middle_name,
                birth_date=date_to_proto(party.birth_date),
                gender=enum_label(party.gender, "GENDER_"),
                preferred_language=party.preferred_language,
            )
        )
    else:
        message.organization.CopyFrom(
            customer_pb2.Organization(
                legal_name=party.legal_name,
                trading_name=party.trading_name,
                tax_id=party.tax_id,
                kind=enum_label(party.kind, "ORGANIZATION_KIND_"),
            )
        )
    return message


def _medium_to_proto(medium: ContactMedium) -> customer_pb2.ContactMedium:
    if medium.phone_number is not None:
        return customer_pb2.ContactMedium(phone_number=medium.phone_number, preferred=medium.preferred)
    if medium.email_address is not None:
        return customer_pb2.ContactMedium(email_address=medium.email_address, preferred=medium.preferred)
    address = medium.postal_address or PostalAddress()
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


# Subscriptions -------------------------------------------------------------------------------------


def subscription_from_proto(message: customer_pb2.Subscription, customer_id: uuid.UUID) -> Subscription:
    """A new line from a Subscription message (status defaults to ACTIVE)."""
    return Subscription(
        id=uuid.uuid4(),
        customer_id=customer_id,
        msisdn=message.msisdn,
        tariff_plan_id=message.tariff_plan_id,
        activation_date=date_from_proto(message.activation_date, "subscription.activation_date"),
        status=_subscription_status(message.status) or SubscriptionStatus.ACTIVE,
        purpose=_subscription_purpose(message.purpose),
        home_region=message.home_region,
    )


def subscription_patch_from_proto(message: customer_pb2.Subscription) -> SubscriptionPatch:
    """The new values of an UpdateSubscription request."""
    return SubscriptionPatch(
        tariff_plan_id=message.tariff_plan_id,
        status=_subscription_status(message.status),
        purpose=_subscription_purpose(message.purpose),
        home_region=message.home_region,
    )


def _subscription_status(value: int) -> SubscriptionStatus | None:
    return enum_from_proto(
        value, customer_pb2.SubscriptionStatus, "SUBSCRIPTION_STATUS_", SubscriptionStatus, "subscription.status"
    )


def _subscription_purpose(value: int) -> SubscriptionPurpose | None:
    return enum_from_proto(
        value, customer_pb2.SubscriptionPurpose, "SUBSCRIPTION_PURPOSE_", SubscriptionPurpose, "subscription.purpose"
    )


def subscription_to_proto(subscription: Subscription) -> customer_pb2.Subscription:
    """The Subscription message of a stored line."""
    return customer_pb2.Subscription(
        name=SUBSCRIPTION.format(subscription.customer_id, subscription.id),
        msisdn=subscription.msisdn,
        tariff_plan_id=subscription.tariff_plan_id,
        activation_date=date_to_proto(subscription.activation_date),
        status=enum_label(subscription.status, "SUBSCRIPTION_STATUS_"),
        purpose=enum_label(subscription.purpose, "SUBSCRIPTION_PURPOSE_"),
        home_region=subscription.home_region,
        create_time=timestamp_to_proto(subscription.create_time),
        update_time=timestamp_to_proto(subscription.update_time),
        etag=etag(subscription.version),
    )


# Consent -------------------------------------------------------------------------------------------


def consent_request_from_proto(purpose: int, decision: int, channel: int) -> ConsentRequest:
    """A decision to record."""
    return ConsentRequest(
        purpose=enum_from_proto(purpose, customer_pb2.ConsentPurpose, "CONSENT_PURPOSE_", ConsentPurpose, "purpose"),
        decision=enum_from_proto(
            decision, customer_pb2.ConsentDecision, "CONSENT_DECISION_", ConsentDecision, "decision"
        ),
        channel=channel_from_proto(channel, "channel"),
    )


def consent_record_to_proto(record: ConsentRecord) -> customer_pb2.ConsentRecord:
    """The ConsentRecord message of a stored decision."""
    return customer_pb2.ConsentRecord(
        name=CONSENT_RECORD.format(record.customer_id, record.id),
        purpose=enum_label(record.purpose, "CONSENT_PURPOSE_"),
        decision=enum_label(record.decision, "CONSENT_DECISION_"),
        channel=enum_label(record.channel, "CHANNEL_"),
        record_time=timestamp_to_proto(record.record_time),
        recorder=record.recorder,
    )


def consent_state_to_proto(customer_id: uuid.UUID, state: ConsentState) -> customer_pb2.ConsentState:
    """The ConsentState message."""
    return customer_pb2.ConsentState(
        name=CONSENT_STATE.format(customer_id),
        purposes=[
            customer_pb2.PurposeConsent(
                purpose=enum_label(entry.purpose, "CONSENT_PURPOSE_"),
                decision=enum_label(entry.latest.decision if entry.latest else None, "CONSENT_DECISION_"),
                permitted=entry.permitted,
                latest_record=consent_record_to_proto(entry.latest) if entry.latest else None,
            )
            for entry in state.purposes
        ],
    )
