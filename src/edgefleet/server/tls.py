"""TLS for the control plane: a private CA and server certificate, operator certificates, client contexts.

``edgefleet server run`` (``--tls auto``, the default) keeps, under ``<data dir>/tls/``::

    ca.pem           private CA certificate (ECDSA P-256, 10 years): devices and the CLI pin it
    ca-key.pem       its key (0600)
    server.pem       server certificate signed by the CA (ECDSA P-256, 1 year, SANs below)
    server-key.pem   its key (0600)

Made on the first start and reused after; the server certificate is issued again at start when less
than 20 % of its lifetime is left, or when a requested SAN is missing from it. The CA is never
replaced by itself (devices pin its fingerprint). ``--tls-cert``/``--tls-key`` (and ``--tls-ca``
to publish) use the operator's certificate instead.

Clients (the operator CLI, the fleet simulator) build their ``ssl.SSLContext`` with
:func:`client_ssl_context`, and turn certificate failures into :class:`TlsUntrustedError`
(``server.tls_untrusted``) with :func:`tls_error`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgefleet.errors import EdgefleetError, InvalidInputError, OperationFailedError, VerificationError

__all__ = [
    "CA_LIFETIME",
    "DEFAULT_SANS",
    "RENEW_FRACTION",
    "SERVER_LIFETIME",
    "ServerTls",
    "TlsConfigError",
    "TlsUntrustedError",
    "client_ssl_context",
    "ensure_auto_tls",
    "fingerprint",
    "operator_tls",
    "resolve_server_tls",
    "tls_error",
]

Now = Callable[[], dt.datetime]

CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
RENEW_FRACTION = 0.2
DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clock is a little behind


class TlsConfigError(InvalidInputError):
    """TLS options or files that cannot be used (missing, unreadable, key not matching the cert)."""

    default_code = "server.tls_config"


class TlsUntrustedError(VerificationError):
    """The server's certificate is not signed by a CA this client trusts (or names another host)."""

    default_code = "server.tls_untrusted"


@dataclass(frozen=True)
class ServerTls:
    """What uvicorn serves and what the operator is told at start."""

    cert: Path
    key: Path
    ca: Path | None  # the CA devices should pin (None: operator certificate without --tls-ca)
    fingerprint: str  # SHA-256 of the pinned certificate (the CA, else the server certificate)
    renewed: bool = False  # the server certificate was (re)issued during this start


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, colon-separated upper-case hex (as ``openssl x509 -fingerprint``)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Atomically write ``data`` to ``path`` with ``mode`` (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OperationFailedError(
            f"cannot write {path}: {exc}", code="server.tls_write", path=str(path)
        ) from exc


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            if any(c.isspace() or c in "/:@" for c in name):
                raise TlsConfigError(
                    f"--tls-san {name!r}: expected a host name or an IP address", field="tls_san"
                ) from None
            out.append(x509.DNSName(name.lower()))
    return out


def _cert_sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v).lower() for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def _wanted_sans(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for g in _san_entries(names):
        out.add(str(g.value) if isinstance(g, x509.IPAddress) else str(g.value).lower())
    return out


def _make_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgefleet"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"edgefleet server CA {now:%Y-%m-%d}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, sans: Sequence[str], now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    entries = _san_entries([*DEFAULT_SANS, *sans])
    not_after = min(now + SERVER_LIFETIME, ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgefleet"),
                    x509.NameAttribute(NameOID.COMMON_NAME, str(entries[0].value)),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _load_cert(path: Path, field: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsConfigError(
            f"{field}: cannot read a PEM certificate from {path}: {exc}", field=field
        ) from exc


def _load_key(path: Path, field: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsConfigError(
            f"{field}: cannot read a PEM private key from {path}: {exc}", field=field
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsConfigError(f"{field}: {path} is not an ECDSA key", field=field)
    return key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _needs_renewal(cert: x509.Certificate, now: dt.datetime) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now <= lifetime * RENEW_FRACTION


def ensure_auto_tls(data_dir: Path, sans: Sequence[str] = (), *, now: Now = _utcnow) -> ServerTls:
    """The self-made CA and server certificate in ``<data_dir>/tls``: created, reused or renewed."""
    wanted = _wanted_sans([*DEFAULT_SANS, *sans])  # bad names are refused before anything is written
    tls_dir = data_dir / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, ca_key_path = tls_dir / "ca.pem", tls_dir / "ca-key.pem"
    cert_path, key_path = tls_dir / "server.pem", tls_dir / "server-key.pem"
    t = now()

    if ca_path.exists() and ca_key_path.exists():
        ca, ca_key = _load_cert(ca_path, "tls.ca"), _load_key(ca_key_path, "tls.ca_key")
        ca_key_path.chmod(0o600)
        if ca.not_valid_after_utc <= t:
            raise TlsConfigError(
                f"the edgefleet CA {ca_path} expired on {ca.not_valid_after_utc:%Y-%m-%d}; move the "
                f"{tls_dir} directory away to create a new CA (devices must then pin the new one)",
                code="server.tls_ca_expired",
                path=str(ca_path),
            )
    else:
        ca_key, ca = _make_ca(t)
        _write_private(ca_key_path, _key_pem(ca_key), 0o600)
        _write_private(ca_path, ca.public_bytes(serialization.Encoding.PEM), 0o644)
        cert_path.unlink(missing_ok=True)  # a server certificate of another CA is worthless now

    renew = True
    if cert_path.exists() and key_path.exists():
        cert = _load_cert(cert_path, "tls.cert")
        key_path.chmod(0o600)
        renew = (
            cert.issuer != ca.subject
            or _needs_renewal(cert, t)
            or not wanted <= _cert_sans(cert)
            or _spki(_load_key(key_path, "tls.key").public_key()) != _spki(cert.public_key())
        )
        if not renew:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                renew = True
    if renew:
        key, cert = _make_server_cert(ca_key, ca, list(sans), t)
        _write_private(key_path, _key_pem(key), 0o600)
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ServerTls(cert=cert_path, key=key_path, ca=ca_path, fingerprint=fingerprint(ca), renewed=renew)


def operator_tls(cert: Path, key: Path, ca: Path | None = None) -> ServerTls:
    """The operator's own certificate and key (PEM), checked to be usable before the server starts."""
    leaf = _load_cert(cert, "tls_cert")
    ca_cert = _load_cert(ca, "tls_ca") if ca is not None else None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"--tls-key {key} does not go with --tls-cert {cert} (or cannot be read): {exc}", field="tls_key"
        ) from exc
    return ServerTls(cert=cert, key=key, ca=ca, fingerprint=fingerprint(ca_cert or leaf))


def resolve_server_tls(
    data_dir: Path,
    mode: str | None,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
    sans: Sequence[str] = (),
    now: Now = _utcnow,
) -> ServerTls | None:
    """What ``server run`` serves: ``None`` for plain HTTP, else the certificate to use.

    ``mode`` is ``auto``, ``off`` or ``None`` (not given: TLS with the operator's certificate when
    ``--tls-cert``/``--tls-key`` are given, else ``auto``). Plain HTTP only with an explicit ``off``.
    """
    if mode not in (None, "auto", "off"):
        raise TlsConfigError(f"--tls {mode!r}: expected auto or off", field="tls", allowed=["auto", "off"])
    operator = cert is not None or key is not None or ca is not None
    if operator:
        if mode is not None:
            raise TlsConfigError(
                f"--tls {mode} cannot be combined with --tls-cert/--tls-key/--tls-ca", field="tls"
            )
        if cert is None or key is None:
            raise TlsConfigError(
                "--tls-cert and --tls-key go together", field="tls_cert" if cert is None else "tls_key"
            )
        return operator_tls(cert, key, ca)
    if mode == "off":
        if sans:
            raise TlsConfigError("--tls-san cannot be combined with --tls off", field="tls_san")
        return None
    return ensure_auto_tls(data_dir, sans, now=now)


def client_ssl_context(ca_cert: Path | str | None = None) -> ssl.SSLContext:
    """The context edgefleet clients verify the server with: ``ca_cert`` if given, else the system CAs."""
    if ca_cert is None or str(ca_cert) == "":
        return ssl.create_default_context()
    path = Path(ca_cert)
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"--ca-cert {path}: cannot load a PEM CA certificate: {exc}", field="ca_cert", path=str(path)
        ) from exc


def tls_error(exc: BaseException, server: str) -> EdgefleetError | None:
    """The edgefleet error for a TLS failure behind an HTTP client exception (else None)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return TlsUntrustedError(
                f"the TLS certificate of {server} is not trusted ({cur.verify_message or cur.reason}); "
                "pass the server's CA certificate with --ca-cert (or EDGEFLEET_CA_CERT): the path and "
                "fingerprint are printed by 'edgefleet server run'",
                server=server,
            )
        if isinstance(cur, ssl.SSLError):
            return TlsUntrustedError(
                f"TLS handshake with {server} failed ({cur.reason or cur}); is the server speaking https?",
                code="server.tls_handshake",
                server=server,
            )
        cur = cur.__cause__ or cur.__context__
    return None
