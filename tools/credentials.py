"""Local credentials for calling the gateway as each kind of caller: a certificate authority, the
gateway's server certificate, partner certificates, and a token-signing key with its public key set.

`make run` keeps them under `.data/credentials/`; tests make their own. A deployment brings its own:
the operator's CA and the identity provider's key set (a JWKS file), named by the gateway's settings.
"""

import datetime
import ipaddress
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER = "https://login.crm.local"
"""The `iss` of locally signed tokens (the gateway's `GATEWAY_TOKEN_ISSUER` in local runs)."""
AUDIENCE = "crm-gateway"
"""The `aud` of locally signed tokens (`GATEWAY_TOKEN_AUDIENCE`)."""
PARTNER_URI_PREFIX = "crm://retailers/"
"""A partner certificate names its retail chain as a SAN URI `crm://retailers/{id}`."""
DEMO_RETAILER = "texnomart"
"""The demo retail chain `make run` issues a certificate to."""
_CA_LIFETIME = datetime.timedelta(days=3650)
_LEAF_LIFETIME = datetime.timedelta(days=825)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key, as PEM files."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class LocalCredentials:
    """What a local gateway and its callers need, as files in one folder."""

    directory: Path
    authority: CertificateFiles
    """The operator's CA: signs the gateway's certificate and the partners' client certificates."""
    server: CertificateFiles
    """The gateway's TLS certificate (for `localhost` and 127.0.0.1)."""
    signing_key: Path
    """The private key local tokens are signed with (EC P-256, ES256)."""
    key_set: Path
    """The public key set (JWKS) the gateway verifies tokens with."""
    key_id: str
    """The `kid` of the signing key in the key set."""

    def gateway_environment(self) -> dict[str, str]:
        """The gateway settings that make it serve TLS and trust these credentials."""
        return {
            "GATEWAY_TLS_CERT_FILE": str(self.server.certificate),
            "GATEWAY_TLS_KEY_FILE": str(self.server.key),
            "GATEWAY_PARTNER_CA_FILE": str(self.authority.certificate),
            "GATEWAY_JWKS_FILE": str(self.key_set),
            "GATEWAY_TOKEN_ISSUER": ISSUER,
            "GATEWAY_TOKEN_AUDIENCE": AUDIENCE,
        }

    def partner(self, retailer: str) -> CertificateFiles:
        """The client certificate of `retailer`, issued by the local CA on first use."""
        files = CertificateFiles(self.directory / f"partner-{retailer}.pem", self.directory / f"partner-{retailer}.key")
        if not files.certificate.exists():
            issue_partner_certificate(self.authority, retailer, files)
        return files

    def employee_token(self, subject: str, roles: Sequence[str], *, lifetime_seconds: int = 3600) -> str:
        """A signed token of an employee with `roles`."""
        return self.sign({"sub": subject, "roles": list(roles)}, lifetime_seconds=lifetime_seconds)

    def customer_token(self, customer: str, *, lifetime_seconds: int = 3600) -> str:
        """A signed token of the customer `customers/{id}`, acting for themselves."""
        return self.sign({"sub": customer, "customer": customer}, lifetime_seconds=lifetime_seconds)

    def sign(
        self, claims: dict[str, object], *, lifetime_seconds: int = 3600, now: datetime.datetime | None = None
    ) -> str:
        """`claims` with issuer, audience and validity added (each may be overridden), signed ES256."""
        issued = now or datetime.datetime.now(datetime.UTC)
        payload: dict[str, object] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "nbf": issued,
            "exp": issued + datetime.timedelta(seconds=lifetime_seconds),
            "jti": str(uuid.uuid4()),
            **claims,
        }
        key = serialization.load_pem_private_key(self.signing_key.read_bytes(), password=None)
        return jwt.encode(payload, key, algorithm="ES256", headers={"kid": self.key_id})  # type: ignore[arg-type]  # an EC key


def ensure_local_credentials(directory: Path) -> LocalCredentials:
    """The credentials in `directory`, created on first use and reused after."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateFiles(directory / "ca.pem", directory / "ca.key")
    server = CertificateFiles(directory / "gateway.pem", directory / "gateway.key")
    signing_key, key_set = directory / "token-signing.key", directory / "jwks.json"
    if not authority.certificate.exists():
        new_certificate_authority(authority, "CRM local operator CA")
    if not server.certificate.exists():
        issue_server_certificate(authority, server)
    if not signing_key.exists():
        write_signing_key(signing_key, key_set, key_id="local-1")
    key_id = json.loads(key_set.read_text())["keys"][0]["kid"]
    return LocalCredentials(directory, authority, server, signing_key, key_set, key_id)


def new_certificate_authority(files: CertificateFiles, name: str) -> None:
    """A self-signed CA that may sign leaf certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(files, certificate, key)


def issue_server_certificate(authority: CertificateFiles, files: CertificateFiles) -> None:
    """The gateway's certificate for local calls (`localhost`, 127.0.0.1, ::1)."""
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    _issue(authority, files, "crm-gateway", names, ExtendedKeyUsageOID.SERVER_AUTH)


def issue_partner_certificate(
    authority: CertificateFiles,
    retailer: str,
    files: CertificateFiles,
    *,
    not_valid_before: datetime.datetime | None = None,
    not_valid_after: datetime.datetime | None = None,
) -> None:
    """A retail chain's client certificate naming it as `crm://retailers/{retailer}`."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"{PARTNER_URI_PREFIX}{retailer}")]
    _issue(
        authority,
        files,
        f"{retailer} point of sale",
        names,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        not_valid_before=not_valid_before,
        not_valid_after=not_valid_after,
    )


def write_signing_key(private_key: Path, key_set: Path, *, key_id: str) -> None:
    """An ES256 signing key and the public key set (JWKS) that verifies it."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_key.chmod(0o600)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    key_set.write_text(json.dumps({"keys": [{**public, "kid": key_id, "use": "sig", "alg": "ES256"}]}, indent=2))


def _issue(
    authority: CertificateFiles,
    files: CertificateFiles,
    common_name: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    *,
    not_valid_before: datetime.datetime | None = None,
    not_valid_after: datetime.datetime | None = None,
) -> None:
    ca_certificate = x509.load_pem_x509_certificate(authority.certificate.read_bytes())
    ca_key = serialization.load_pem_private_key(authority.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_valid_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_valid_after or now + _LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),  # type: ignore[arg-type]  # an EC key
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]  # an EC key
    )
    _write(files, certificate, key)


def _write(files: CertificateFiles, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)
