"""Starting the gateway as a real process with real credentials, and calling it as each kind of caller:
an employee or a customer with a signed token over TLS, a retail partner with its client certificate
over mutual TLS."""

from collections.abc import Sequence

import grpc

from tests.processes import ANY_PORT, ServiceProcess
from tools.credentials import LocalCredentials
from tools.local_gateway import bearer, partner_tls, tls


def gateway_environment(credentials: LocalCredentials, database_url: str, **settings: str) -> dict[str, str]:
    """The gateway's settings for a test: TLS with these credentials, its audit database, every
    listener on a port of its own choosing (read back from its log), `settings` on top (`GATEWAY_` added)."""
    return {
        **credentials.gateway_environment(),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_GRPC_ADDRESS": ANY_PORT,
        "GATEWAY_PARTNER_ADDRESS": ANY_PORT,
        "GATEWAY_PROBE_ADDRESS": ANY_PORT,
        "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
        **{f"GATEWAY_{name}": value for name, value in settings.items()},
    }


def server_trust(credentials: LocalCredentials) -> grpc.ChannelCredentials:
    """TLS that trusts the gateway's certificate, presenting no client certificate."""
    return tls(credentials.authority.certificate)


def employee_channel(
    gateway: ServiceProcess, credentials: LocalCredentials, roles: Sequence[str], subject: str = "agent-dilnoza"
) -> grpc.aio.Channel:
    """A channel whose every call carries an employee's token with `roles`."""
    return token_channel(gateway, credentials, credentials.employee_token(subject, roles))


def customer_channel(gateway: ServiceProcess, credentials: LocalCredentials, customer: str) -> grpc.aio.Channel:
    """A channel whose every call carries the token of `customer` (`customers/{id}`)."""
    return token_channel(gateway, credentials, credentials.customer_token(customer))


def token_channel(gateway: ServiceProcess, credentials: LocalCredentials, token: str) -> grpc.aio.Channel:
    """A TLS channel to the gateway's main address sending `token` as the bearer on every call."""
    return grpc.aio.secure_channel(gateway.address, bearer(credentials.authority.certificate, token))


def partner_channel(gateway: ServiceProcess, credentials: LocalCredentials, retailer: str) -> grpc.aio.Channel:
    """A mutual-TLS channel to the partner address with `retailer`'s client certificate."""
    return grpc.aio.secure_channel(
        gateway.partner_address, partner_tls(credentials.authority.certificate, credentials.partner(retailer))
    )
