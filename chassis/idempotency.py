"""Exactly-once mutations keyed by the caller's `request_id` (AIP-155).

The first call with an id does the work and stores its response in the same transaction; a repeat
with the same request returns that stored response without doing the work again; a repeat with a
different request is INVALID_ARGUMENT. Concurrent repeats wait on the key's row, so only one does
the work. Ids are scoped to the caller.

Keys are kept for the service's request-id retention (`<PREFIX>_DATABASE_REQUEST_ID_RETENTION_SECONDS`,
7 days by default), counted from the first call's `create_time` (stamped by the database) against the
service's clock. A retry with the same request_id within the retention gets the first answer (or
INVALID_ARGUMENT for a different request); after it the chassis prunes the key (`chassis.retention`,
within one prune interval), and the id is new again: a retry then does the work again. So a client,
and a worker retrying a pending step, must not retry a request older than the retention.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.database import Database
from chassis.errors import Aborted, FieldViolation, InvalidArgument, invalid_field

Response = TypeVar("Response", bound=Message)

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


IDEMPOTENCY_CREATE_TIME_INDEX = (
    "CREATE INDEX IF NOT EXISTS idempotency_keys_create_time ON idempotency_keys (create_time)"
)
"""Finds the keys past their retention without reading the whole table (`chassis.retention`)."""

IDEMPOTENCY_DDL = (
    """
    CREATE TABLE idempotency_keys (
        caller text NOT NULL,
        request_id text NOT NULL,
        method text NOT NULL,
        fingerprint bytea NOT NULL,
        response bytea,
        create_time timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (caller, request_id)
    )
    """,
    IDEMPOTENCY_CREATE_TIME_INDEX,
)
"""Statements a service's first migration runs to keep its request ids (see `idempotency_table`)."""


def idempotency_table(metadata: MetaData) -> Table:
    """The table every service keeps its request ids in (created by the service's migration)."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("caller", String, primary_key=True),
        Column("request_id", String, primary_key=True),
        Column("method", String, nullable=False),
        Column("fingerprint", LargeBinary, nullable=False),
        Column("response", LargeBinary, nullable=True),
        Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class IdempotentRunner:
    """Runs a mutation once per (caller, request_id) inside one database transaction."""

    def __init__(self, database: Database, table: Table) -> None:
        self._database = database
        self._table = table

    async def run(
        self,
        request: Message,
        response_type: type[Response],
        work: Callable[[AsyncSession], Awaitable[Response]],
    ) -> Response:
        """`work`'s response, computed once; repeats of the same request get the stored copy.

        The request's own `request_id` field is the key; its message type tells the methods apart.
        """
        # Every retryable request message has the field; Message does not declare it.
        request_id: str = getattr(request, "request_id", "")
        method = request.DESCRIPTOR.full_name
        if not REQUEST_ID_PATTERN.fullmatch(request_id):
            raise invalid_field("request_id", "is required: 1 to 128 letters, digits, '.', '_', ':' or '-'")
        caller = current_caller().subject
        fingerprint = _fingerprint(request)
        async with self._database.transaction() as session:
            reserved = await session.execute(
                insert(self._table)
                .values(caller=caller, request_id=request_id, method=method, fingerprint=fingerprint)
                .on_conflict_do_nothing()
                .returning(self._table.c.request_id)
            )
            if reserved.first() is None:
                return await self._replay(session, caller, request_id, method, fingerprint, response_type)
            response = await work(session)
            await session.execute(
                self._table.update()
                .where(self._table.c.caller == caller, self._table.c.request_id == request_id)
                .values(response=response.SerializeToString(deterministic=True))
            )
            return response

    async def _replay(
        self,
        session: AsyncSession,
        caller: str,
        request_id: str,
        method: str,
        fingerprint: bytes,
        response_type: type[Response],
    ) -> Response:
        row = (
            await session.execute(
                select(self._table.c.method, self._table.c.fingerprint, self._table.c.response).where(
                    self._table.c.caller == caller, self._table.c.request_id == request_id
                )
            )
        ).first()
        if row is None:
            # Pruned past its retention between the reservation and this read: the id is new again.
            raise Aborted("REQUEST_ID_EXPIRED", f"{request_id!r} passed its retention just now; send it again")
        if row.method != method or row.fingerprint != fingerprint or row.response is None:
            violation = FieldViolation("request_id", f"{request_id!r} was already used for a different request")
            raise InvalidArgument([violation], reason="REQUEST_ID_REUSED")
        return response_type.FromString(row.response)


def _fingerprint(request: Message) -> bytes:
    """Digest of the request without its request_id, so that only the content is compared."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()
