"""Assembles the gateway: the guard (credentials, rate limits, policy, audit), backend channels, the
forwarder, backend health followed by Watch, the audit trail's store and the listeners: TLS for
employees' and customers' apps, mutual TLS for retail partners, plaintext health for probes."""

import grpc
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor

from chassis.channels import open_channel
from chassis.clock import SYSTEM_CLOCK, Clock
from chassis.database import Database, create_engine
from chassis.server import ServiceServer, build_server
from chassis.settings import SettingsError
from crm.gateway.v1 import audit_pb2, audit_pb2_grpc
from gateway.access import Access
from gateway.audit import AuditTrail
from gateway.audit_servicer import AuditServicer
from gateway.backend_health import BackendHealth
from gateway.forwarding import ERROR_DOMAIN, Forwarder
from gateway.identity import Authenticator, TokenVerifier
from gateway.owners import PartnerCustomers, ResourceOwners
from gateway.policy import PolicyError, load_policy
from gateway.rate_limits import RateLimits
from gateway.routes import COMPLAINTS_SERVICE, CUSTOMER_SERVICE, EXPOSED_SERVICES, OFFERS_SERVICE
from gateway.settings import GatewaySettings

AUDIT_SERVICE: ServiceDescriptor = audit_pb2.DESCRIPTOR.services_by_name["AuditService"]


def guarded_methods() -> dict[str, MethodDescriptor]:
    """Every method the gateway serves under its policy, by full gRPC path."""
    forwarded = {f"/{service.name}/{m.name}": m for service in EXPOSED_SERVICES for m in service.public_methods}
    own = {f"/{AUDIT_SERVICE.full_name}/{m.name}": m for m in AUDIT_SERVICE.methods}
    return {**forwarded, **own}


def contract_messages() -> dict[str, Descriptor]:
    """Every message the guarded methods can carry, by full name (the policy names their fields)."""
    found: dict[str, Descriptor] = {}

    def visit(message: Descriptor) -> None:
        if message.full_name in found:
            return
        found[message.full_name] = message
        for field in message.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for method in guarded_methods().values():
        visit(method.input_type)
        visit(method.output_type)
    return found


def build_gateway_server(settings: GatewaySettings, *, clock: Clock = SYSTEM_CLOCK) -> ServiceServer:
    """The gateway, bound to its ports, not yet started."""
    methods = guarded_methods()
    try:
        policy = load_policy(settings.policy_file, methods, contract_messages())
    except PolicyError as error:
        raise SettingsError("GATEWAY_POLICY_FILE", str(error)) from None
    # One channel per backend address, shared by every service that backend serves, for the gateway's
    # own calls (owners, health); and one per address for forwarding, which traces its calls itself.
    targets = settings.backend_targets

    def channels_by_service(*, traced: bool) -> dict[str, grpc.aio.Channel]:
        by_target = {
            target: open_channel(
                target,
                service_names=[name for name, t in targets.items() if t == target],
                max_message_bytes=settings.server.max_message_bytes,
                traced=traced,
            )
            for target in set(targets.values())
        }
        opened.extend(by_target.values())
        return {name: by_target[target] for name, target in targets.items()}

    opened: list[grpc.aio.Channel] = []
    channels = channels_by_service(traced=True)
    forwarding_channels = channels_by_service(traced=False)
    database = Database(create_engine(settings.database, application_name="gateway"))
    audit_trail = AuditTrail(database)
    access = Access(
        authenticator=Authenticator(
            TokenVerifier(settings.tokens, clock), development_identity=settings.development_identity
        ),
        policy=policy,
        methods=methods,
        partner_customers=PartnerCustomers(
            channels[CUSTOMER_SERVICE],
            clock,
            owner_cache_seconds=settings.owner_cache_seconds,
            presence_seconds=settings.counter_presence_seconds,
        ),
        resource_owners=ResourceOwners(complaints=channels[COMPLAINTS_SERVICE], offers=channels[OFFERS_SERVICE]),
        rate_limits=RateLimits(
            clock, employee=settings.employee_rate, customer=settings.customer_rate, retailer=settings.retailer_rate
        ),
        audit_trail=audit_trail,
        clock=clock,
    )
    forwarder = Forwarder(forwarding_channels, settings.max_deadline_seconds)
    backend_health = BackendHealth(channels)
    key_and_chain = [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
    partner_ca = settings.partner_ca_file.read_bytes()
    listeners: dict[str, tuple[str, grpc.ServerCredentials | None]] = {
        "partner_port": (settings.partner_address, _mutual_tls(key_and_chain, partner_ca))
    }
    if settings.probe_address:
        listeners["probe_port"] = (settings.probe_address, None)

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(forwarder.handlers(EXPOSED_SERVICES))
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(database), server)

    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[*(service.name for service in EXPOSED_SERVICES), AUDIT_SERVICE.full_name],
        register=register,
        readiness=backend_health.current,
        trust_caller_metadata=False,
        guard=access,
        credentials=grpc.ssl_server_credentials(key_and_chain),
        more_listeners=listeners,
    )
    backend_health.listen(server.report)

    async def close_channels() -> None:
        for channel in opened:
            await channel.close()

    server.on_start.extend([backend_health.start, audit_trail.start])
    server.on_stop.extend([backend_health.stop, close_channels, audit_trail.stop, database.close])
    return server


def _mutual_tls(key_and_chain: list[tuple[bytes, bytes]], client_ca: bytes) -> grpc.ServerCredentials:
    """TLS that requires a client certificate chaining to `client_ca` (checked by the TLS layer:
    no certificate, another CA's or an expired one ends the handshake)."""
    return grpc.ssl_server_credentials(key_and_chain, root_certificates=client_ca, require_client_auth=True)
