"""`crm.customer.v1.SegmentService`: segments with their reasons, counts, members and the config."""

import re
from datetime import UTC, datetime

import grpc

from chassis.database import Database
from chassis.errors import invalid_field, not_found
from chassis.pagination import next_page_token, read_page_request
from crm.customer.v1 import segments_pb2, segments_pb2_grpc
from services.customer import segment_store, segmentation, store
from services.customer.mapping import (
    customer_name,
    enum_from_proto,
    enum_to_proto,
    etag,
    parse_customer_name,
    timestamp,
    version_from_etag,
)

Context = grpc.aio.ServicerContext
CONFIG_NAME = "segmentationConfig"
_DIMENSION_PREFIX = "SEGMENT_DIMENSION_"
_SEGMENT_NAME = re.compile(r"^segments/([a-z0-9][a-z0-9\-]{0,120})$")


class SegmentServicer(segments_pb2_grpc.SegmentServiceServicer):
    """Reads segments and manages the segmentation config."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def GetCustomerSegments(
        self, request: segments_pb2.GetCustomerSegmentsRequest, context: Context
    ) -> segments_pb2.CustomerSegments:
        parent, _, leaf = request.name.rpartition("/")
        if leaf != "segments":
            raise invalid_field("name", "must look like customers/{customer}/segments")
        customer_id = parse_customer_name(parent, "name")
        async with self._database.transaction() as session:
            if await store.get_customer(session, customer_id) is None:
                raise not_found("customer", customer_name(customer_id))
            memberships = await segment_store.memberships(session, customer_id)
            score = await segment_store.customer_score(session, customer_id)
        return segments_pb2.CustomerSegments(
            name=f"{customer_name(customer_id)}/segments",
            memberships=[_membership(m) for m in memberships],
            churn_risk_score=score.churn_risk_score if score else 0.0,
            churn_factors=[_evidence(e) for e in score.churn_factors] if score else [],
            evaluate_time=timestamp(score.evaluate_time) if score else None,
        )

    async def ListSegments(
        self, request: segments_pb2.ListSegmentsRequest, context: Context
    ) -> segments_pb2.ListSegmentsResponse:
        dimension = _dimension_filter(request)
        async with self._database.transaction() as session:
            counts = await segment_store.segment_counts(session)
        segments = [
            _segment(segment, count)
            for segment, count in counts.items()
            if count > 0 and (dimension is None or segmentation.dimension_of(segment) is dimension)
        ]
        return segments_pb2.ListSegmentsResponse(segments=segments)

    async def ListSegmentMembers(
        self, request: segments_pb2.ListSegmentMembersRequest, context: Context
    ) -> segments_pb2.ListSegmentMembersResponse:
        match = _SEGMENT_NAME.match(request.segment)
        if match is None:
            raise invalid_field("segment", "must look like segments/{segment}, e.g. segments/value-vip")
        criteria = {"segment": match.group(1)}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            members = await segment_store.segment_members(session, match.group(1), page)
        token = next_page_token([str(members[page.size - 1])], criteria) if len(members) > page.size else ""
        return segments_pb2.ListSegmentMembersResponse(
            customers=[customer_name(m) for m in members[: page.size]], next_page_token=token
        )

    async def GetSegmentationConfig(
        self, request: segments_pb2.GetSegmentationConfigRequest, context: Context
    ) -> segments_pb2.SegmentationConfig:
        _check_config_name(request.name, "name")
        async with self._database.transaction() as session:
            config, version = await segment_store.load_config(session)
        return _config_to_proto(config, version)

    async def UpdateSegmentationConfig(
        self, request: segments_pb2.UpdateSegmentationConfigRequest, context: Context
    ) -> segments_pb2.SegmentationConfig:
        if request.config.name:
            _check_config_name(request.config.name, "config.name")
        expected = version_from_etag(request.config.etag, "config.etag")
        patch = _config_from_proto(request.config)
        async with self._database.transaction() as session:
            current, _ = await segment_store.load_config(session)
            updated = segmentation.apply_config_update(current, patch, list(request.update_mask.paths))
            version = await segment_store.save_config(
                session, updated, expected_version=expected, now=datetime.now(UTC)
            )
        return _config_to_proto(updated, version)


def _check_config_name(name: str, field: str) -> None:
    if name != CONFIG_NAME:
        raise invalid_field(field, f"must be {CONFIG_NAME!r}")


def _dimension_filter(request: segments_pb2.ListSegmentsRequest) -> segmentation.Dimension | None:
    """The requested dimension; None when the field is not set, which lists every segment."""
    if not request.HasField("dimension"):
        return None
    dimension = enum_from_proto(
        request.dimension, segments_pb2.SegmentDimension, _DIMENSION_PREFIX, segmentation.Dimension, "dimension"
    )
    if dimension is None:
        raise invalid_field("dimension", "name a dimension, or leave the field out to list every segment")
    return dimension


def _segment(segment: str, member_count: int) -> segments_pb2.Segment:
    return segments_pb2.Segment(
        name=f"segments/{segment}",
        dimension=enum_to_proto(segmentation.dimension_of(segment), segments_pb2.SegmentDimension, _DIMENSION_PREFIX),
        description=segmentation.describe_segment(segment),
        member_count=member_count,
    )


def _membership(membership: segment_store.StoredMembership) -> segments_pb2.SegmentMembership:
    return segments_pb2.SegmentMembership(
        segment=f"segments/{membership.segment}",
        rule=membership.rule,
        evidence=[_evidence(e) for e in membership.evidence],
        since=timestamp(membership.since),
    )


def _evidence(evidence: segmentation.Evidence) -> segments_pb2.Evidence:
    return segments_pb2.Evidence(
        factor=evidence.factor, value=evidence.value, threshold=evidence.threshold, contribution=evidence.contribution
    )


def _config_to_proto(config: segmentation.SegmentationConfig, version: int) -> segments_pb2.SegmentationConfig:
    values = config.to_json()
    return segments_pb2.SegmentationConfig(name=CONFIG_NAME, etag=etag(version), **values)  # type: ignore[arg-type]


def _config_from_proto(message: segments_pb2.SegmentationConfig) -> segmentation.SegmentationConfig:
    values = {name: getattr(message, name) for name in segmentation.UPDATABLE_CONFIG_FIELDS}
    values["tenure_band_years"] = tuple(message.tenure_band_years)
    values["age_band_years"] = tuple(message.age_band_years)
    return segmentation.SegmentationConfig(**values)  # type: ignore[arg-type]
