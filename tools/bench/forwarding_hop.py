"""`python -m tools.bench.forwarding_hop TARGET`: sends every call on to the echo server at TARGET.

What any gateway on this machine could at best cost: the bare server of `tools.bench.bare_server`
forwarding the request bytes over one grpc.aio channel, with the caller's remaining deadline, and the
answer's bytes (or its status) back. Prints the port it listens on.
"""

import argparse
import asyncio

import grpc

from tools.bench.bare_server import METHOD_PATH, Context, serve_until_signalled
from tools.bench.calls import CALL_TIMEOUT_SECONDS


async def forward_until_signalled(target: str) -> None:
    """Serves the forwarding hop until SIGTERM or SIGINT."""
    async with grpc.aio.insecure_channel(target) as channel:
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD_PATH)

        async def forward(request: bytes, context: Context) -> bytes:
            remaining = context.time_remaining()
            try:
                return await echo(request, timeout=CALL_TIMEOUT_SECONDS if remaining is None else remaining)
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")

        await serve_until_signalled(forward)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the echo server")
    asyncio.run(forward_until_signalled(parser.parse_args().target))
