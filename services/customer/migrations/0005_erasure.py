"""Erasure: when a customer's data was erased, which stored answers are about which customer, and the
outbox by aggregate.

Revision ID: 0005
Revises: 0004
"""

import uuid

import sqlalchemy as sa
from alembic import op
from google.protobuf.message import DecodeError, Message

from chassis.outbox import OUTBOX_AGGREGATE_INDEX
from crm.customer.v1 import customer_pb2

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Answers stored before this revision, by the method that stored them; their name starts with the customer's.
_ANSWER_TYPES: dict[str, type[Message]] = {
    "CreateCustomer": customer_pb2.Customer,
    "ChangeCustomerStatus": customer_pb2.Customer,
    "CreateSubscription": customer_pb2.Subscription,
    "RecordConsent": customer_pb2.ConsentRecord,
}
_BATCH = 1000


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN erase_time timestamptz")
    op.execute("ALTER TABLE idempotency_keys ADD COLUMN customer_id uuid")
    op.execute("CREATE INDEX idempotency_keys_customer ON idempotency_keys (customer_id) WHERE customer_id IS NOT NULL")
    op.execute(OUTBOX_AGGREGATE_INDEX)
    _link_stored_answers()


def downgrade() -> None:
    op.execute("DROP INDEX outbox_aggregate")
    op.execute("ALTER TABLE idempotency_keys DROP COLUMN customer_id")
    op.execute("ALTER TABLE customers DROP COLUMN erase_time")


def _link_stored_answers() -> None:
    """Links the answers stored before this revision to their customers, a batch at a time."""
    connection = op.get_bind()
    after = ("", "")
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT caller, request_id, method, response FROM idempotency_keys "
                "WHERE (caller, request_id) > (:caller, :request_id) AND method = ANY(:methods) "
                "AND response IS NOT NULL ORDER BY caller, request_id LIMIT :batch"
            ),
            {"caller": after[0], "request_id": after[1], "methods": list(_ANSWER_TYPES), "batch": _BATCH},
        ).all()
        links = [
            {"caller": row.caller, "request_id": row.request_id, "customer_id": customer_id}
            for row in rows
            if (customer_id := _customer_of(row.method, row.response)) is not None
        ]
        if links:
            connection.execute(
                sa.text(
                    "UPDATE idempotency_keys SET customer_id = :customer_id "
                    "WHERE caller = :caller AND request_id = :request_id"
                ),
                links,
            )
        if len(rows) < _BATCH:
            return
        after = (rows[-1].caller, rows[-1].request_id)


def _customer_of(method: str, response: bytes) -> uuid.UUID | None:
    try:
        answer = _ANSWER_TYPES[method].FromString(response)
    except DecodeError:
        return None
    parts = str(getattr(answer, "name", "")).split("/")
    if len(parts) < 2 or parts[0] != "customers":
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None
