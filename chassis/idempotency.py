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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RequestKey:
    """What a retryable request is kept by: who asked, under which id, with which method and content."""

    caller: str
    request_id: str
    method: str
    """The request message's full name: an id reused for another method is refused."""
    fingerprint: bytes
    """Digest of the request without its request_id."""


@dataclass(frozen=True)
class StoredRequest:
    """What the table holds of a request seen before."""

    method: str
    fingerprint: bytes
    response: bytes | None
    """The first answer; None once erased (the key stays, so that a retry is refused)."""


def request_key(request: Message) -> RequestKey:
    """The key of a retryable request made by the current caller; INVALID_ARGUMENT when its own
    `request_id` field is missing or malformed."""
    # Every retryable request message has the field; Message does not declare it.
    request_id: str = getattr(request, "request_id", "")
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise invalid_field("request_id", "is required: 1 to 128 letters, digits, '.', '_', ':' or '-'")
    return RequestKey(current_caller().subject, request_id, request.DESCRIPTOR.full_name, _fingerprint(request))


def stored_response(key: RequestKey, stored: StoredRequest, response_type: type[Response]) -> Response:
    """The first answer to a repeat of the request `key`; INVALID_ARGUMENT REQUEST_ID_REUSED when the
    id was used for another request (or its answer was erased)."""
    if stored.method != key.method or stored.fingerprint != key.fingerprint or stored.response is None:
        violation = FieldViolation("request_id", f"{key.request_id!r} was already used for a different request")
        raise InvalidArgument([violation], reason="REQUEST_ID_REUSED")
    return response_type.FromString(stored.response)


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
        key = request_key(request)
        async with self._database.transaction() as session:
            reserved = await session.execute(
                insert(self._table)
                .values(caller=key.caller, request_id=key.request_id, method=key.method, fingerprint=key.fingerprint)
                .on_conflict_do_nothing()
                .returning(self._table.c.request_id)
            )
            if reserved.first() is None:
                return await self._replay(session, key, response_type)
            response = await work(session)
            await session.execute(
                self._table.update()
                .where(self._table.c.caller == key.caller, self._table.c.request_id == key.request_id)
                .values(response=response.SerializeToString(deterministic=True))
            )
            return response

    async def _replay(self, session: AsyncSession, key: RequestKey, response_type: type[Response]) -> Response:
        row = (
            await session.execute(
                select(self._table.c.method, self._table.c.fingerprint, self._table.c.response).where(
                    self._table.c.caller == key.caller, self._table.c.request_id == key.request_id
                )
            )
        ).first()
        if row is None:
            # Pruned past its retention between the reservation and this read: the id is new again.
            raise Aborted("REQUEST_ID_EXPIRED", f"{key.request_id!r} passed its retention just now; send it again")
        return stored_response(key, StoredRequest(row.method, row.fingerprint, row.response), response_type)


def _fingerprint(request: Message) -> bytes:
    """Digest of the request without its request_id, so that only the content is compared."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()
