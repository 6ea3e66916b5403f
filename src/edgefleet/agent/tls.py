"""The agent's trust in the server's TLS certificate: a CA pinned at enrollment (stdlib ``ssl`` only).

At enrollment the CA comes from ``--ca-file`` (a PEM file), or from the server itself checked
against ``--ca-fingerprint`` (trust on first use: the CA is fetched from ``/device/v1/ca.pem`` over an
unverified connection and kept only when its SHA-256 matches the fingerprint `edgefleet server run`
printed). It is stored as ``server-ca.pem`` in the state directory and every later request verifies
the server against it alone. Without either, an ``https`` server is verified against the system CAs.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import ssl
import urllib.parse

from edgefleet.agent.errors import AgentInputError, AgentUnavailableError, AgentVerificationError

__all__ = [
    "context_for",
    "fetch_ca",
    "normalize_fingerprint",
    "pem_fingerprint",
    "untrusted_error",
]

_HEX64 = re.compile(r"^[0-9A-F]{64}$")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:...`` (as `server run` prints it), from any case, with or without colons."""
    raw = re.sub(r"[\s:]", "", text).upper().removeprefix("SHA256=")
    if not _HEX64.match(raw):
        raise AgentInputError(
            f"--ca-fingerprint {text!r}: expected the SHA-256 fingerprint printed by "
            "'edgefleet server run' (64 hex digits, colons allowed)",
            field="ca-fingerprint",
        )
    return ":".join(raw[i : i + 2] for i in range(0, 64, 2))


def pem_fingerprint(pem: bytes) -> str:
    """SHA-256 of the first certificate in ``pem`` (DER), formatted like :func:`normalize_fingerprint`."""
    m = _PEM_CERT.search(pem)
    if m is None:
        raise AgentInputError("no PEM certificate found", field="ca-file")
    try:
        der = ssl.PEM_cert_to_DER_cert(m.group(0).decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AgentInputError(f"not a PEM certificate: {exc}", field="ca-file") from exc
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def context_for(ca_pem: bytes | None) -> ssl.SSLContext:
    """Verify the server against ``ca_pem`` only, or against the system CAs when it is None."""
    if ca_pem is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        raise AgentInputError(f"the pinned CA certificate cannot be loaded: {exc}", field="ca-file") from exc


def fetch_ca(server: str, fingerprint: str, *, timeout: float = 30.0) -> bytes:
    """The server's CA (``/device/v1/ca.pem``), kept only when its SHA-256 is ``fingerprint``.

    The connection is not verified (there is nothing to verify it with yet); the fingerprint is
    what makes the answer trustworthy, and the next request verifies the server against it.
    """
    url = urllib.parse.urlsplit(server)
    if url.scheme != "https":
        raise AgentInputError("--ca-fingerprint needs an https --server", field="ca-fingerprint")
    blind = ssl.create_default_context()
    blind.check_hostname = False
    blind.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout, context=blind)
    try:
        conn.request("GET", url.path.rstrip("/") + "/device/v1/ca.pem")
        r = conn.getresponse()
        body = r.read(1 << 16)
    except (OSError, http.client.HTTPException) as exc:
        raise AgentUnavailableError(f"cannot fetch the CA certificate from {server}: {exc}") from exc
    finally:
        conn.close()
    if r.status != 200:
        raise AgentVerificationError(
            f"{server} publishes no CA certificate (HTTP {r.status}); give --ca-file instead",
            code="agent.tls_no_ca",
        )
    got = pem_fingerprint(body)
    pem = _PEM_CERT.search(body)
    if got != fingerprint or pem is None:
        raise AgentVerificationError(
            f"the CA certificate offered by {server} has SHA-256 {got}, not the expected {fingerprint}: "
            "refusing to trust it (wrong server, or someone in between)",
            code="agent.tls_untrusted",
            expected=fingerprint,
            actual=got,
        )
    return pem.group(0) + b"\n"


def untrusted_error(exc: ssl.SSLError, server: str, pinned: str | None) -> AgentVerificationError:
    """A clear error for a server whose certificate does not verify."""
    why = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    against = f"the CA pinned at enrollment (SHA-256 {pinned})" if pinned else "the system CAs"
    return AgentVerificationError(
        f"the TLS certificate of {server} does not verify against {against}: {why}; refusing to talk "
        "to it (re-enroll, or give --ca-file with the server's new CA)",
        code="agent.tls_untrusted",
        server=server,
    )
