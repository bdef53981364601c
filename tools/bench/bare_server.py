"""A bare grpc.aio server with one generic unary method, bytes in and bytes out, for the baselines.

No interceptors, no telemetry, no health, no reflection: what is left is grpc.aio itself. It listens
on a free port of 127.0.0.1, prints that port on stdout (a line of its own) once it serves, and stops
on SIGTERM or SIGINT, letting the calls in flight finish.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import grpc

SERVICE = "crm.bench.v1.Echo"
METHOD = "Echo"
METHOD_PATH = f"/{SERVICE}/{METHOD}"
STOP_GRACE_SECONDS = 2.0

# The method's messages stay bytes: nothing is parsed or encoded on the server.
Context: TypeAlias = "grpc.aio.ServicerContext[bytes, bytes]"  # subscriptable only in the stubs
Answer = Callable[[bytes, Context], Awaitable[bytes]]


async def serve_until_signalled(answer: Answer) -> None:
    """Serves `answer` as the one method on a free port of 127.0.0.1 until SIGTERM or SIGINT."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(answer)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await server.start()
    print(port, flush=True)
    await stop_requested.wait()
    await server.stop(STOP_GRACE_SECONDS)
