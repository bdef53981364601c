"""`crm.gateway.v1.AuditService` over gRPC: maps a listing request to the audit trail's query and its
records back to messages. Who may read the trail is the gateway's access policy, decided before this."""

import grpc
from google.protobuf.message import Message

from chassis.database import Database
from chassis.pagination import read_page_request
from chassis.wellknown import timestamp_to_proto
from crm.gateway.v1 import audit_pb2, audit_pb2_grpc
from gateway.audit import StoredAuditRecord, audit_filter, list_audit_records

# Handlers neither read nor write through the context: requests and answers are their arguments.
Context = grpc.aio.ServicerContext[Message, Message]


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """The audit trail's gRPC face."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: Context
    ) -> audit_pb2.ListAuditRecordsResponse:
        filters = audit_filter(subject=request.subject, method=request.method, outcome=request.outcome)
        page = read_page_request(request.page_size, request.page_token, filters.criteria())
        async with self._database.transaction() as session:
            result = await list_audit_records(session, filters, page)
        return audit_pb2.ListAuditRecordsResponse(
            audit_records=[_audit_record_to_proto(r) for r in result.items], next_page_token=result.next_page_token
        )


def _audit_record_to_proto(stored: StoredAuditRecord) -> audit_pb2.AuditRecord:
    record = stored.record
    return audit_pb2.AuditRecord(
        name=stored.name,
        time=timestamp_to_proto(record.time),
        subject=record.subject,
        caller_kind=record.caller_kind,
        roles=list(record.roles),
        tenant=record.tenant,
        method=record.method,
        resource=record.resource,
        outcome=record.outcome,
        reason=record.reason,
        trace_id=record.trace_id,
    )
