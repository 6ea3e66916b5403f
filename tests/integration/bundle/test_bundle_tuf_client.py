"""Round trip over real HTTP: build → sign → refresh → fetch → verify → install, and key rotation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from edgefleet.bundle.errors import BundleError, BundleInputError, BundleNotFoundError, BundleUnavailableError
from edgefleet.bundle.keys import KeyPolicy, KeyStore, load_signer
from edgefleet.bundle.repository import Repository

from .conftest import World


@pytest.mark.integration
def test_round_trip_installs_the_signed_bundle(world: World) -> None:
    client = world.client()
    installed = client.fetch("relu", "1.0.0")
    assert (installed.manifest.name, installed.manifest.version) == ("relu", "1.0.0")
    assert sorted(p.name for p in installed.path.iterdir()) == ["bundle.json", "model-1.0.0.onnx"]
    assert (installed.path.parent.name, installed.path.name) == ("store", installed.sha256)
    assert any(r.startswith(f"/targets/{installed.sha256}.relu-1.0.0.tar") for r in world.served.requests)
    state = world.tmp / "device" / "state" / "metadata"
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json"} <= {
        p.name for p in state.iterdir()
    }
    assert not list((world.tmp / "device" / "state" / "downloads").iterdir()), "no partial download is left"


@pytest.mark.integration
def test_trusted_state_persists_and_installed_bundles_are_not_downloaded_again(world: World) -> None:
    world.client().fetch("relu", "1.0.0")
    world.release("1.1.0")
    before = len([r for r in world.served.requests if r.startswith("/targets/")])
    again = world.client(bootstrap=False)  # no root given: the persisted one is used
    again.fetch("relu", "1.0.0")
    assert len([r for r in world.served.requests if r.startswith("/targets/")]) == before
    assert again.fetch("relu", "1.1.0").manifest.version == "1.1.0"


@pytest.mark.integration
def test_no_trusted_root_is_a_clear_error(world: World) -> None:
    with pytest.raises(BundleInputError) as err:
        world.client(bootstrap=False).refresh()
    assert err.value.code == "bundle.untrusted"


@pytest.mark.integration
def test_unknown_target_is_refused(world: World) -> None:
    client = world.client()
    client.refresh()
    with pytest.raises(BundleNotFoundError) as err:
        client.target("relu", "9.9.9")
    assert err.value.code == "bundle.unknown_target"


@pytest.mark.integration
def test_unreachable_repository_is_download_failed(world: World, serve: object, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    world.served = serve(tmp_path / "empty")  # type: ignore[operator]
    with pytest.raises(BundleUnavailableError) as err:
        world.client().refresh()
    assert err.value.code == "bundle.download_failed"


@pytest.mark.integration
def test_key_rotation_is_accepted_by_a_client_with_the_old_root(world: World) -> None:
    """Root and targets keys rotated (root v3): old-state and v1-bootstrapped clients both follow."""
    seasoned = world.client("seasoned")
    seasoned.fetch("relu", "1.0.0")
    world.keys.rotate("root", None)
    world.keys.rotate("targets", None)
    world.repo.sync_roots(world.keys.root_versions())
    world.repo.sign_targets(world.keys.signers("targets", None))
    world.release("1.1.0")
    assert seasoned.fetch("relu", "1.1.0").manifest.version == "1.1.0"
    fresh = world.client("fresh")  # bootstrapped with 1.root.json
    assert fresh.fetch("relu", "1.1.0").manifest.version == "1.1.0"
    trusted = Metadata[Root].from_bytes(
        (world.tmp / "fresh" / "state" / "metadata" / "root.json").read_bytes()
    )
    assert trusted.signed.version == 3


@pytest.mark.integration
def test_retired_root_key_cannot_sign_a_new_root(world: World) -> None:
    """After rotation, a root v3 signed only by the retired root key is refused."""
    world.keys.rotate("root", None)
    world.repo.sync_roots(world.keys.root_versions())
    (retired,) = (world.keys.path / "retired").glob("v1-root-*.pem")
    v2 = Metadata[Root].from_bytes(world.repo.metadata_dir.joinpath("2.root.json").read_bytes())
    v2.signed.version = 3
    forged = Metadata(v2.signed)
    forged.sign(load_signer(retired, None))
    world.repo.metadata_dir.joinpath("3.root.json").write_bytes(forged.to_bytes())
    with pytest.raises(BundleError) as err:
        world.client().refresh()
    assert err.value.code == "bundle.bad_signature"


@pytest.mark.integration
def test_threshold_two_of_three_targets_keys(tmp_path: Path, serve: object) -> None:
    """A targets threshold of 2 needs two signatures; the client accepts the bundle once it has them."""
    keys = KeyStore(tmp_path / "keys")
    keys.init(KeyPolicy(targets_keys=3, targets_threshold=2), None)
    repo = Repository.create(tmp_path / "repo", keys.root_versions())
    world = World(tmp_path, keys, repo, serve(tmp_path / "repo"))  # type: ignore[operator]
    signers = keys.signers("targets", None)
    with pytest.raises(BundleError) as err:
        repo.sign_targets(signers[:1])
    assert err.value.code == "keys.not_authorized"
    world.release("1.0.0")
    body = json.loads(world.metadata("1.targets.json").read_text())
    assert len(body["signatures"]) == 3
    assert world.client().fetch("relu", "1.0.0").manifest.version == "1.0.0"


@pytest.mark.integration
def test_client_module_stays_light() -> None:
    """The agent's import of the client pulls in neither numpy, onnx nor onnxruntime."""
    code = (
        "import sys, edgefleet.bundle.client, edgefleet.bundle.store;"
        "bad = [m for m in ('numpy', 'onnx', 'onnxruntime') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
