"""`python -m tools.bench.echo_server`: answers every call with its own request bytes.

What any service on this machine could at best reach: the bare server of `tools.bench.bare_server`,
doing nothing. Prints the port it listens on.
"""

import asyncio

from tools.bench.bare_server import Context, serve_until_signalled


async def echo(request: bytes, context: Context) -> bytes:
    """The request, as it came."""
    return request


if __name__ == "__main__":
    asyncio.run(serve_until_signalled(echo))
