"""`edgefleet keys` and `edgefleet bundle` options: passphrase sources, sizes, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefleet.bundle.errors import BundleError, BundleInputError, BundleNotFoundError, KeyAccessError
from edgefleet.cli.app import app
from edgefleet.cli.bundle import parse_size
from edgefleet.cli.keys import resolve_passphrase
from edgefleet.errors import EdgefleetError

from .bundle_helpers import tiny_onnx


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args), env=env)
    exc = result.exception if isinstance(result.exception, EdgefleetError) else None
    if result.exception is not None and exc is None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output, exc


@pytest.mark.unit
def test_passphrase_from_file_env_or_refused(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret\nignored\n")
    assert resolve_passphrase(f, None, confirm=False) == b"s3cret"
    assert resolve_passphrase(None, "PW", confirm=False, environ={"PW": "x"}) == b"x"
    with pytest.raises(BundleInputError, match="PW"):
        resolve_passphrase(None, "PW", confirm=False, environ={})
    with pytest.raises(BundleNotFoundError):
        resolve_passphrase(tmp_path / "none", None, confirm=False)
    (tmp_path / "empty").write_text("")
    with pytest.raises(BundleInputError) as err:
        resolve_passphrase(tmp_path / "empty", None, confirm=False)
    assert err.value.code == "keys.passphrase_required"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("256Mi", 256 << 20), ("1G", 10**9), ("2KiB", 2048)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, option="--min-memory") == size


@pytest.mark.unit
def test_bad_size_names_the_option() -> None:
    with pytest.raises(BundleInputError, match="--min-memory"):
        parse_size("lots", option="--min-memory")


@pytest.mark.unit
def test_keys_and_sign_through_the_cli(tmp_path: Path) -> None:
    """init with a passphrase file, show, build, sign; then a wrong passphrase is refused."""
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    keys, repo = str(tmp_path / "keys"), str(tmp_path / "repo")
    code, out, _ = _invoke("keys", "init", keys, "--passphrase-file", str(pw), "--targets-keys", "2")
    assert code == 0, out
    code, out, _ = _invoke("keys", "show", keys)
    assert code == 0
    assert "targets" in out
    model = tiny_onnx(tmp_path / "m.onnx")
    tar = str(tmp_path / "m.tar")
    code, out, _ = _invoke(
        "bundle",
        "build",
        str(model),
        "--name",
        "m",
        "--version",
        "1.0.0",
        "-o",
        tar,
        "--created",
        "1767225600",
        "--min-memory",
        "64Mi",
        "--provider",
        "CPUExecutionProvider",
    )
    assert code == 0, out
    code, out, _ = _invoke("bundle", "inspect", tar, "--json")
    assert '"min_memory_bytes": 67108864' in out
    code, out, _ = _invoke(
        "bundle", "sign", tar, "--keys", keys, "--repo", repo, "--passphrase-file", str(pw)
    )
    assert code == 0, out
    assert "timestamp v1" in out
    pw.write_text("wrong\n")
    _, _, exc = _invoke("bundle", "sign", tar, "--keys", keys, "--repo", repo, "--passphrase-file", str(pw))
    assert isinstance(exc, KeyAccessError)
    assert exc.code == "keys.bad_passphrase"


@pytest.mark.unit
def test_cli_refusals_carry_codes(tmp_path: Path) -> None:
    _, _, exc = _invoke("keys", "init", str(tmp_path / "k"), "--insecure-plaintext", "--root-threshold", "2")
    assert isinstance(exc, BundleInputError)
    assert exc.code == "keys.threshold"
    _, _, exc = _invoke(
        "keys",
        "rotate",
        str(tmp_path / "k2"),
        "--role",
        "root",
        "--insecure-plaintext",
        "--repo",
        str(tmp_path / "no-repo"),
    )
    assert isinstance(exc, BundleNotFoundError)
    model = tiny_onnx(tmp_path / "m.onnx")
    _, _, exc = _invoke(
        "bundle",
        "build",
        str(model),
        "--name",
        "m",
        "--version",
        "1.0.0",
        "--format",
        "pt",
        "-o",
        str(tmp_path / "x.tar"),
    )
    assert isinstance(exc, BundleInputError)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 100)
    _, _, exc = _invoke("bundle", "verify", str(junk))
    assert isinstance(exc, BundleError)
    assert exc.code == "bundle.not_a_tar"


@pytest.mark.unit
def test_keys_init_prompts_twice_for_the_passphrase(tmp_path: Path) -> None:
    """Without --passphrase-file/--passphrase-env the passphrase is prompted for, with confirmation."""
    result = CliRunner().invoke(app, ["keys", "init", str(tmp_path / "keys")], input="pw1\npw1\n")
    assert result.exit_code == 0, result.output
    from edgefleet.bundle.keys import KeyStore

    assert len(KeyStore(tmp_path / "keys").signers("targets", b"pw1")) == 1
