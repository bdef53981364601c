"""`crm.customer.v1.SegmentService`: segments with their reasons, counts, members and the config."""

import grpc
from google.protobuf.message import Message

from chassis.database import Database
from chassis.etags import version_from_etag
from chassis.names import CUSTOMER
from chassis.pagination import read_page_request
from crm.customer.v1 import segments_pb2, segments_pb2_grpc
from services.customer.segments.mapping import (
    CUSTOMER_SEGMENTS,
    check_config_name,
    config_from_proto,
    config_to_proto,
    customer_segments_to_proto,
    dimension_filter_from_proto,
    segment_id_from_name,
    segment_to_proto,
)
from services.customer.segments.use_cases import Segmentation

# Handlers neither read nor write through the context: requests and answers are their arguments.
Context = grpc.aio.ServicerContext[Message, Message]


class SegmentServicer(segments_pb2_grpc.SegmentServiceServicer):
    """The segments part's gRPC face."""

    def __init__(self, database: Database, segmentation: Segmentation) -> None:
        self._database = database
        self._segmentation = segmentation

    async def GetCustomerSegments(
        self, request: segments_pb2.GetCustomerSegmentsRequest, context: Context
    ) -> segments_pb2.CustomerSegments:
        customer_id = CUSTOMER_SEGMENTS.parse_uuid(request.name)
        async with self._database.transaction() as session:
            memberships, score = await self._segmentation.customer_segments(session, customer_id)
        return customer_segments_to_proto(customer_id, memberships, score)

    async def ListSegments(
        self, request: segments_pb2.ListSegmentsRequest, context: Context
    ) -> segments_pb2.ListSegmentsResponse:
        dimension = dimension_filter_from_proto(request)
        async with self._database.transaction() as session:
            segments = await self._segmentation.segments(session, dimension)
        return segments_pb2.ListSegmentsResponse(segments=[segment_to_proto(s, count) for s, count in segments])

    async def ListSegmentMembers(
        self, request: segments_pb2.ListSegmentMembersRequest, context: Context
    ) -> segments_pb2.ListSegmentMembersResponse:
        segment = segment_id_from_name(request.segment, "segment")
        page = read_page_request(request.page_size, request.page_token, {"segment": segment})
        async with self._database.transaction() as session:
            members = await self._segmentation.members(session, segment, page)
        return segments_pb2.ListSegmentMembersResponse(
            customers=[CUSTOMER.format(m) for m in members.items], next_page_token=members.next_page_token
        )

    async def GetSegmentationConfig(
        self, request: segments_pb2.GetSegmentationConfigRequest, context: Context
    ) -> segments_pb2.SegmentationConfig:
        check_config_name(request.name, "name")
        async with self._database.transaction() as session:
            config, version = await self._segmentation.config(session)
        return config_to_proto(config, version)

    async def UpdateSegmentationConfig(
        self, request: segments_pb2.UpdateSegmentationConfigRequest, context: Context
    ) -> segments_pb2.SegmentationConfig:
        if request.config.name:
            check_config_name(request.config.name, "config.name")
        expected_version = version_from_etag(request.config.etag, "config.etag")
        patch = config_from_proto(request.config)
        paths = list(request.update_mask.paths)
        async with self._database.transaction() as session:
            config, version = await self._segmentation.update_config(session, patch, paths, expected_version)
        return config_to_proto(config, version)
