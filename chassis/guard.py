"""The hook through which a front door (the gateway) checks every call before any handler runs.

The chassis' interceptor calls the guard first, before admission and decoding, with the method and
the request as it arrived (bytes; None for a request stream); the guard establishes the caller and
refuses with a `DomainError` (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED), which the
interceptor maps and logs like any other. An admitted call gets a `GuardedCall` that shapes each
response the caller receives and hears the call's outcome.
"""

from typing import Protocol

import grpc


class GuardedCall(Protocol):
    """One admitted call, as its guard follows it."""

    def respond(self, response: object) -> object:
        """What the caller receives of `response` (e.g. masked fields); `response` when nothing changes."""
        ...

    def finish(self, code: grpc.StatusCode) -> None:
        """Hears the call's final code (e.g. to audit a mutation)."""
        ...


class CallGuard(Protocol):
    """Checks each call before admission."""

    async def admit(
        self, method: str, request: bytes | None, context: grpc.aio.ServicerContext[object, object]
    ) -> GuardedCall:
        """The admitted call; raises a `DomainError` to refuse it."""
        ...
