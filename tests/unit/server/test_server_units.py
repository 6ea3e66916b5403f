"""Selectors, request signatures, ranges, desired-state signatures: the small pieces on their own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet.errors import EdgefleetError, VerificationError
from edgefleet.server.auth import Caller, NonceCache, sign_request, verify_request
from edgefleet.server.blobs import FileBlobStore, parse_range
from edgefleet.server.errors import ForbiddenError, RangeNotSatisfiableError, ServerInputError
from edgefleet.server.keys import ServerKey, verify_document
from edgefleet.server.selectors import Selector, validate_labels

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("app=cam", {"app": "cam"}, True),
        ("app=cam", {"app": "lidar"}, False),
        ("app!=cam", {}, True),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier notin (a,b)", {"tier": "b"}, False),
        ("gpu", {"gpu": ""}, True),
        ("!gpu", {"gpu": "1"}, False),
        ("app=cam,region in (eu),!legacy", {"app": "cam", "region": "eu"}, True),
    ],
)
def test_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Selector.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["=a", "a in ()", "a,,b", "a in (b", "a=b c"])
def test_bad_selectors_name_the_field(text: str) -> None:
    with pytest.raises(ServerInputError) as err:
        Selector.parse(text)
    assert err.value.fields["field"] == "selector"


def test_bad_label_names_it() -> None:
    with pytest.raises(ServerInputError) as err:
        validate_labels({"ok": "yes", "no way": "x"})
    assert err.value.fields["field"] == "labels.no way"


def _verify(headers: dict[str, str], key: Ed25519PrivateKey, nonces: NonceCache, now: float) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return verify_request(
        headers, "POST", "/device/v1/report", b"{}", public_key_for=lambda _d: raw, nonces=nonces, now=now
    )


def test_signed_request_round_trip_replay_and_skew() -> None:
    key = Ed25519PrivateKey.generate()
    nonces = NonceCache()
    h = sign_request(key, "dev_1", "POST", "/device/v1/report", b"{}", now=1000)
    assert _verify(h, key, nonces, 1000) == "dev_1"
    with pytest.raises(EdgefleetError, match="replay"):
        _verify(h, key, nonces, 1001)
    with pytest.raises(EdgefleetError) as err:
        _verify(sign_request(key, "dev_1", "POST", "/device/v1/report", b"{}", now=1000), key, nonces, 2000)
    assert err.value.code == "server.clock_skew"
    tampered = sign_request(key, "dev_1", "POST", "/device/v1/report", b"{ }", now=1000)
    with pytest.raises(EdgefleetError) as err:
        _verify(tampered, key, nonces, 1000)
    assert err.value.code == "server.bad_signature"


def test_nonce_cache_forgets_outside_the_window() -> None:
    cache = NonceCache(capacity=10)
    assert cache.add("a", 0)
    assert not cache.add("a", 1)
    assert cache.add("a", 10_000)


def test_caller_roles_and_scope() -> None:
    op = Caller("t", "ci", "operator", "p1")
    op.require("viewer", "p1")
    with pytest.raises(ForbiddenError):
        op.require("admin", "p1")
    with pytest.raises(ForbiddenError):
        op.require("viewer", "p2")
    Caller("t", "root", "admin", None).require("admin", "anything")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=5-500", (5, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=x-1", "bytes=-0", "bytes=7"])
def test_unsatisfiable_range(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(header, 100)


def test_blob_store_is_content_addressed(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    sha, size = store.put(io.BytesIO(b"hello"))
    assert sha == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert size == 5
    assert store.path(sha).read_bytes() == b"hello"
    assert not list(tmp_path.glob(".upload-*"))


def test_server_key_signs_documents(tmp_path: Path) -> None:
    key = ServerKey.load_or_create(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    again = ServerKey.load_or_create(tmp_path / "k.pem")
    assert again.keyid == key.keyid
    env = key.sign_document({"revision": 1, "workloads": []})
    assert verify_document(env, key.public_raw) == {"revision": 1, "workloads": []}
    env["signed"]["revision"] = 2
    with pytest.raises(VerificationError):
        verify_document(env, key.public_raw)
