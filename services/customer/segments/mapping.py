"""Translation between the segments contract's messages and the segments part's types."""

import uuid
from collections.abc import Sequence

from chassis.errors import invalid_field
from chassis.etags import etag
from chassis.names import CUSTOMER, ResourcePattern
from chassis.wellknown import timestamp_to_proto
from crm.customer.v1 import events_pb2, segments_pb2
from services.customer.proto_enums import enum_from_proto, enum_label
from services.customer.segments.catalogue import Dimension, describe_segment, dimension_of, is_segment_id
from services.customer.segments.config import CONFIG_NAME, UPDATABLE_CONFIG_FIELDS, SegmentationConfig
from services.customer.segments.rules import CustomerScore, Evidence, Membership, StoredMembership

SEGMENT = ResourcePattern("segments/{segment}")
"""A segment, e.g. `segments/value-vip`."""
CUSTOMER_SEGMENTS = ResourcePattern("customers/{customer}/segments")
"""A customer's memberships and score."""
_DIMENSION_PREFIX = "SEGMENT_DIMENSION_"


def segment_id_from_name(name: str, field: str) -> str:
    """The id in `segments/{segment}`; INVALID_ARGUMENT naming `field` when malformed."""
    (segment,) = SEGMENT.parse(name, field)
    if not is_segment_id(segment):
        raise invalid_field(field, f"must look like segments/{{segment}}, e.g. segments/value-vip, got {name!r}")
    return segment


def dimension_filter_from_proto(request: segments_pb2.ListSegmentsRequest) -> Dimension | None:
    """The requested dimension; None when the field is not set, which lists every segment."""
    if not request.HasField("dimension"):
        return None
    dimension = enum_from_proto(
        request.dimension, segments_pb2.SegmentDimension, _DIMENSION_PREFIX, Dimension, "dimension"
    )
    if dimension is None:
        raise invalid_field("dimension", "name a dimension, or leave the field out to list every segment")
    return dimension


def check_config_name(name: str, field: str) -> None:
    """The config is a singleton: its one name is CONFIG_NAME."""
    if name != CONFIG_NAME:
        raise invalid_field(field, f"must be {CONFIG_NAME!r}")


def customer_segments_to_proto(
    customer_id: uuid.UUID, memberships: list[StoredMembership], score: CustomerScore | None
) -> segments_pb2.CustomerSegments:
    """The CustomerSegments message."""
    return segments_pb2.CustomerSegments(
        name=CUSTOMER_SEGMENTS.format(customer_id),
        memberships=[_stored_membership_to_proto(m) for m in memberships],
        churn_risk_score=score.churn_risk_score if score else 0.0,
        churn_factors=[_evidence_to_proto(e) for e in score.churn_factors] if score else [],
        evaluate_time=timestamp_to_proto(score.evaluate_time) if score else None,
    )


def segment_to_proto(segment: str, member_count: int) -> segments_pb2.Segment:
    """The Segment message of a segment with its member count."""
    return segments_pb2.Segment(
        name=SEGMENT.format(segment),
        dimension=enum_label(dimension_of(segment), _DIMENSION_PREFIX),
        description=describe_segment(segment),
        member_count=member_count,
    )


def segments_changed_event(
    customer_id: uuid.UUID, entered: Sequence[Membership], left: Sequence[str], churn_risk_score: float | None
) -> events_pb2.SegmentsChanged:
    """The event of a customer entering and leaving segments (no score when only the ranking moved)."""
    return events_pb2.SegmentsChanged(
        customer=CUSTOMER.format(customer_id),
        entered=[membership_to_proto(m) for m in entered],
        left=[SEGMENT.format(name) for name in left],
        churn_risk_score=churn_risk_score or 0.0,
    )


def membership_to_proto(membership: Membership) -> segments_pb2.SegmentMembership:
    """A membership just entered (its `since` is the event's time)."""
    return segments_pb2.SegmentMembership(
        segment=SEGMENT.format(membership.segment),
        rule=membership.rule,
        evidence=[_evidence_to_proto(e) for e in membership.evidence],
    )


def config_to_proto(config: SegmentationConfig, version: int) -> segments_pb2.SegmentationConfig:
    """The SegmentationConfig message of a stored version."""
    values = config.to_json()
    return segments_pb2.SegmentationConfig(name=CONFIG_NAME, etag=etag(version), **values)  # type: ignore[arg-type]  # the config's fields are the message's, by name and type


def config_from_proto(message: segments_pb2.SegmentationConfig) -> SegmentationConfig:
    """The new values of an UpdateSegmentationConfig request (only the masked ones are read)."""
    values = {name: getattr(message, name) for name in UPDATABLE_CONFIG_FIELDS}
    values["tenure_band_years"] = tuple(message.tenure_band_years)
    values["age_band_years"] = tuple(message.age_band_years)
    return SegmentationConfig(**values)


def _stored_membership_to_proto(membership: StoredMembership) -> segments_pb2.SegmentMembership:
    return segments_pb2.SegmentMembership(
        segment=SEGMENT.format(membership.segment),
        rule=membership.rule,
        evidence=[_evidence_to_proto(e) for e in membership.evidence],
        since=timestamp_to_proto(membership.since),
    )


def _evidence_to_proto(evidence: Evidence) -> segments_pb2.Evidence:
    return segments_pb2.Evidence(
        factor=evidence.factor, value=evidence.value, threshold=evidence.threshold, contribution=evidence.contribution
    )
