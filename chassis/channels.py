"""Outgoing gRPC channels: traced, size-bounded, with retries declared in the service config."""

import json
from collections.abc import Sequence

import grpc

from chassis.telemetry import client_interceptors

# Retry only what cannot have done work twice: mutations carry request_id, so a retried UNAVAILABLE
# is answered from the idempotency record.
_RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def open_channel(
    target: str, *, service_names: Sequence[str], max_message_bytes: int = 4 * 1024 * 1024, traced: bool = True
) -> grpc.aio.Channel:
    """An insecure channel to an in-cluster backend at `target` (`host:port`). Its calls have client
    spans and carry the trace context, unless `traced` is false: then each caller adds them itself
    (`chassis.telemetry.client_span`), sparing every call the interceptor chain of the channel."""
    service_config = {
        "methodConfig": [{"name": [{"service": name} for name in service_names], "retryPolicy": _RETRY_POLICY}]
    }
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", json.dumps(service_config)),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
        interceptors=client_interceptors() if traced else (),
    )
