"""The server's TLS material: the self-made CA and certificate, operator certificates, client contexts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgefleet.server.tls import (
    SERVER_LIFETIME,
    TlsConfigError,
    TlsUntrustedError,
    client_ssl_context,
    ensure_auto_tls,
    resolve_server_tls,
    tls_error,
)

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_first_start_makes_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    tls = ensure_auto_tls(tmp_path, ["fleet.example.com", "10.0.0.7"], now=lambda: T0)
    assert tls.ca is not None
    ca, leaf = _cert(tls.ca), _cert(tls.cert)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign
    assert ku.crl_sign
    assert not ku.digital_signature
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "fleet.example.com"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.0.0.7"),
    }
    leaf.verify_directly_issued_by(ca)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc > SERVER_LIFETIME
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / "tls" / key).stat().st_mode) == 0o600
    assert tls.fingerprint == ca.fingerprint(hashes.SHA256()).hex(":").upper()
    # Python's ssl module accepts it as a server certificate, and trusts it through the CA
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
    client_ssl_context(tls.ca)


def test_later_starts_reuse_and_renew_near_expiry(tmp_path: Path) -> None:
    first = ensure_auto_tls(tmp_path, now=lambda: T0)
    ca_bytes, cert_bytes = (tmp_path / "tls/ca.pem").read_bytes(), first.cert.read_bytes()
    (tmp_path / "tls/server-key.pem").chmod(0o644)  # loosened by hand: tightened again

    again = ensure_auto_tls(tmp_path, now=lambda: T0 + dt.timedelta(days=200))
    assert not again.renewed
    assert again.cert.read_bytes() == cert_bytes
    assert stat.S_IMODE((tmp_path / "tls/server-key.pem").stat().st_mode) == 0o600

    late = ensure_auto_tls(tmp_path, now=lambda: T0 + dt.timedelta(days=300))  # < 20 % of 365 d left
    assert late.renewed
    assert late.cert.read_bytes() != cert_bytes
    assert (tmp_path / "tls/ca.pem").read_bytes() == ca_bytes
    assert late.fingerprint == first.fingerprint
    assert _cert(late.cert).not_valid_after_utc > T0 + dt.timedelta(days=600)

    wider = ensure_auto_tls(tmp_path, ["edge.lan"], now=lambda: T0 + dt.timedelta(days=301))
    assert wider.renewed  # a new SAN was asked for
    assert not ensure_auto_tls(tmp_path, ["edge.lan"], now=lambda: T0 + dt.timedelta(days=302)).renewed


def test_operator_certificates_and_bad_options(tmp_path: Path) -> None:
    made = ensure_auto_tls(tmp_path / "a", now=lambda: T0)
    assert made.ca is not None
    op = resolve_server_tls(tmp_path, None, cert=made.cert, key=made.key, ca=made.ca)
    assert op is not None
    assert op.cert == made.cert
    assert op.fingerprint == made.fingerprint
    assert resolve_server_tls(tmp_path, "off") is None
    default = resolve_server_tls(tmp_path / "d", None)  # not given: auto, never plain HTTP
    assert default is not None
    assert default.ca == tmp_path / "d" / "tls" / "ca.pem"
    other = ensure_auto_tls(tmp_path / "b", now=lambda: T0)
    with pytest.raises(TlsConfigError) as e:
        resolve_server_tls(tmp_path, None, cert=made.cert, key=other.key)
    assert e.value.code == "server.tls_config"
    assert e.value.fields["field"] == "tls_key"
    with pytest.raises(TlsConfigError, match="go together"):
        resolve_server_tls(tmp_path, None, cert=made.cert)
    with pytest.raises(TlsConfigError, match="cannot be combined"):
        resolve_server_tls(tmp_path, "auto", cert=made.cert, key=made.key)
    with pytest.raises(TlsConfigError, match="--tls off"):
        resolve_server_tls(tmp_path, "off", sans=["edge.lan"])
    with pytest.raises(TlsConfigError, match="expected auto or off"):
        resolve_server_tls(tmp_path, "on")
    with pytest.raises(TlsConfigError, match="host name or an IP"):
        resolve_server_tls(tmp_path, "auto", sans=["not a/name"])
    with pytest.raises(TlsConfigError, match="--ca-cert"):
        client_ssl_context(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TlsConfigError):
        resolve_server_tls(tmp_path, None, cert=bad, key=made.key)
    assert not list(tmp_path.glob("tls"))  # nothing made for operator or plain modes


def test_tls_errors_are_translated() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    try:
        try:
            raise verify
        except ssl.SSLError as inner:
            raise ConnectionError("connect failed") from inner
    except ConnectionError as outer:
        err = tls_error(outer, "https://127.0.0.1:1")
    assert isinstance(err, TlsUntrustedError)
    assert err.code == "server.tls_untrusted"
    assert "--ca-cert" in err.message
    assert "self-signed" in err.message
    assert tls_error(ValueError("x"), "https://h") is None


def test_start_banner_prints_the_fingerprint_literally(tmp_path: Path) -> None:
    """Regression: rich turned ``:AB:`` inside a fingerprint into an emoji, so copying it failed."""
    import io

    from rich.console import Console

    from edgefleet.cli.server import announce
    from edgefleet.server.tls import ServerTls

    fp = ":".join(["AB"] * 32)
    out = io.StringIO()
    console = Console(file=out, width=60, color_system=None)
    tls = ServerTls(cert=tmp_path / "s.pem", key=tmp_path / "k.pem", ca=tmp_path / "[ca].pem", fingerprint=fp)
    announce(console, token="efk_a:ok:b", url="https://h:1", data_dir=tmp_path, server_tls=tls)  # noqa: S106
    text = out.getvalue()
    assert f"TLS CA SHA-256 fingerprint: {fp}\n" in text
    assert f"TLS CA certificate: {tmp_path / '[ca].pem'}\n" in text
    assert "efk_a:ok:b\n" in text
    announce(console, token=None, url="http://h:1", data_dir=tmp_path, server_tls=None)
    assert "warning: --tls off" in out.getvalue()
