"""Running an image: load it into podman, run it through the sandbox's podman backend, or write a
Podman Quadlet unit for devices that run it without the agent.

The library API the agent uses for ``runtime = "container"`` deployments:

- :func:`ensure_image` (bundle → image archive, built once per bundle sha256, and loaded) → image id;
- :func:`workload_spec` (image → the sandbox's :class:`SandboxSpec` + :class:`PodmanTarget`);
- :func:`podman_argv` (the full ``podman run`` command line, from the sandbox's backend).
"""

from __future__ import annotations

import json
import platform
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.image.build import GRPC_PORT, HTTP_PORT, LABEL_PREFIX, build_image
from edgefleet.image.errors import ImageBuildError, ImageInputError, ImageNotFoundError
from edgefleet.sandbox.limits import CFS_PERIOD_US, Limits
from edgefleet.sandbox.podman import PodmanBackend, PodmanTarget
from edgefleet.sandbox.spec import Isolation, Network, SandboxSpec, UserId

__all__ = [
    "ArchiveImage",
    "ensure_image",
    "host_arch",
    "load_image",
    "podman_argv",
    "quadlet_unit",
    "read_archive",
    "workload_spec",
]

Runner = Callable[..., subprocess.CompletedProcess[str]]

_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch(machine: str | None = None) -> str:
    """This machine's OCI architecture (``amd64``, ``arm64``)."""
    m = machine or platform.machine()
    if m not in _MACHINES:
        raise ImageInputError(
            f"architecture {m!r} is not supported; allowed x86_64, aarch64", field="platform"
        )
    return _MACHINES[m]


@dataclass(frozen=True)
class ArchiveImage:
    """One platform's image in an OCI layout archive, as its config describes it."""

    ref_name: str
    arch: str
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]

    @property
    def image_id(self) -> str:
        """The id podman gives the image once loaded."""
        return self.config_digest.removeprefix("sha256:")

    @property
    def labels(self) -> dict[str, str]:
        """The image's labels."""
        return dict(self.config.get("config", {}).get("Labels") or {})

    @property
    def cmd(self) -> list[str]:
        """The default arguments (``serve /bundle/<name>/<model> ...``)."""
        return list(self.config.get("config", {}).get("Cmd") or [])

    @property
    def user(self) -> UserId:
        """The image's runtime user (numeric ``uid:gid``)."""
        text = str(self.config.get("config", {}).get("User") or "65532:65532")
        uid, _, gid = text.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ImageInputError(f"image user {text!r} must be numeric uid[:gid]", field="User")
        return UserId(int(uid), int(gid or uid), text)

    @property
    def health_cmd(self) -> list[str]:
        """The health check command (from the ``io.edgefleet.healthcheck`` label)."""
        text = self.labels.get(f"{LABEL_PREFIX}.healthcheck")
        return list(json.loads(text)) if text else []


def read_archive(archive: Path, arch: str | None = None) -> ArchiveImage:
    """The image for ``arch`` (default: this machine's) in an OCI layout archive."""
    arch = arch or host_arch()
    try:
        with tarfile.open(archive) as tar:

            def read(name: str) -> Any:
                member = tar.extractfile(name)
                if member is None:
                    raise ImageInputError(f"{archive}: {name} is not a file", path=str(archive))
                return json.loads(member.read())

            def blob(digest: str) -> Any:
                return read("blobs/sha256/" + digest.removeprefix("sha256:"))

            index = read("index.json")
            todo = [
                (d, d.get("annotations", {}).get("org.opencontainers.image.ref.name", ""))
                for d in index["manifests"]
            ]
            while todo:
                desc, ref = todo.pop(0)
                doc = blob(desc["digest"])
                if "manifests" in doc:
                    todo += [(d, ref) for d in doc["manifests"]]
                    continue
                config = blob(doc["config"]["digest"])
                if config.get("architecture") == arch:
                    return ArchiveImage(ref, arch, desc["digest"], doc["config"]["digest"], config)
    except FileNotFoundError as exc:
        raise ImageNotFoundError(f"{archive}: no such image archive", path=str(archive)) from exc
    except (tarfile.TarError, KeyError, ValueError) as exc:
        raise ImageInputError(
            f"{archive}: not an OCI image layout archive ({exc})", path=str(archive)
        ) from exc
    raise ImageNotFoundError(f"{archive}: no linux/{arch} image in it", path=str(archive), arch=arch)


def _podman_base(backend: PodmanBackend) -> list[str]:
    return [backend.podman, "--runtime", backend.runtime, "--cgroup-manager", backend.cgroup_manager]


def image_exists(
    image_id: str, *, backend: PodmanBackend | None = None, runner: Runner = subprocess.run
) -> bool:
    """Whether podman already has the image."""
    backend = backend or PodmanBackend()
    done = runner(
        [*_podman_base(backend), "image", "exists", image_id], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


def load_image(
    archive: Path, *, backend: PodmanBackend | None = None, runner: Runner = subprocess.run
) -> ArchiveImage:
    """``podman load`` the archive (skipped when the image is there already); the host's image."""
    backend = backend or PodmanBackend()
    if (missing := backend.available()) is not None:
        raise ImageNotFoundError(f"podman: {missing}", code="image.podman_missing")
    image = read_archive(archive)
    if not image_exists(image.image_id, backend=backend, runner=runner):
        done = runner(
            [*_podman_base(backend), "load", "-i", str(archive)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ImageBuildError(
                f"podman load {archive} failed: {done.stderr.strip()[-800:]}", path=str(archive)
            )
    return image


def workload_spec(
    image: ArchiveImage,
    *,
    name: str,
    limits: Limits | None = None,
    network: Network = "host",
    http_port: int = HTTP_PORT,
    grpc_port: int = GRPC_PORT,
    host: str = "0.0.0.0",  # noqa: S104 - the server's interface inside the container
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> tuple[SandboxSpec, PodmanTarget]:
    """The sandbox spec that runs ``image``'s server with ``limits`` (as the image's user)."""
    argv = [
        *image.cmd,
        "--host",
        host,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        *extra_args,
    ]
    isolation = Isolation(hostname="edgefleet", network=network, user=image.user, workdir=Path("/tmp"))  # noqa: S108 - the container's tmpfs
    spec = SandboxSpec(name, tuple(argv), limits or Limits(), isolation, env=env)
    return spec, PodmanTarget(image=image.image_id)


def podman_argv(
    spec: SandboxSpec, target: PodmanTarget, container: str, *, backend: PodmanBackend | None = None
) -> list[str]:
    """The ``podman run`` command line the sandbox's podman backend gives ``spec``."""
    return (backend or PodmanBackend()).command(spec, target, container)


def ensure_image(
    bundle: Path,
    cache_dir: Path,
    *,
    load: bool = True,
    backend: PodmanBackend | None = None,
    runner: Runner = subprocess.run,
) -> ArchiveImage:
    """The image of ``bundle`` for this machine: built once per bundle sha256 under
    ``<cache>/images/``, and (with ``load``) loaded into podman. Returns the image (``.image_id``)."""
    import hashlib

    sha = hashlib.sha256()
    try:
        with bundle.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
    except FileNotFoundError as exc:
        raise ImageNotFoundError(f"{bundle}: no such bundle", path=str(bundle)) from exc
    arch = host_arch()
    archive = cache_dir / "images" / f"{sha.hexdigest()}-{arch}.tar"
    if not archive.exists():
        build_image(bundle, archive, platforms=[arch], cache_dir=cache_dir, runner=runner)
    return load_image(archive, backend=backend, runner=runner) if load else read_archive(archive, arch)


def quadlet_unit(
    image: ArchiveImage,
    *,
    image_ref: str | None = None,
    name: str | None = None,
    limits: Limits | None = None,
    http_port: int = HTTP_PORT,
    grpc_port: int = GRPC_PORT,
) -> str:
    """A Podman Quadlet ``.container`` unit that runs ``image`` hardened, with ``limits``."""
    lim = limits or Limits()
    bundle = image.labels.get(f"{LABEL_PREFIX}.bundle.name", "model")
    version = image.labels.get(f"{LABEL_PREFIX}.bundle.version", "")
    name = name or f"edgefleet-{bundle}"
    ref = image_ref or (f"localhost/{image.ref_name}" if image.ref_name else image.image_id)
    podman_args = ["--ulimit nofile=1024:1024", "--ulimit nproc=4096:4096"]
    if lim.cpus is not None:
        podman_args.append(f"--cpu-period {CFS_PERIOD_US} --cpu-quota {lim.cfs_quota_us()}")
    if lim.cpuset_cpus is not None:
        podman_args.append(f"--cpuset-cpus {lim.cpuset_cpus}")
    if lim.memory_max is not None:
        podman_args.append(f"--memory {lim.memory_max} --memory-swap {lim.memory_max}")
    if lim.pids_max is not None:
        podman_args.append(f"--pids-limit {lim.pids_max}")
    # JSON array form: podman runs it directly (the image has no /bin/sh for a shell form)
    health = json.dumps(image.health_cmd) if image.health_cmd else ""
    lines = [
        f"# edgefleet: bundle {bundle} {version} (image {image.image_id[:12]})",
        "# Install: copy to /etc/containers/systemd/ (or ~/.config/containers/systemd/),",
        f"# then `systemctl daemon-reload && systemctl start {name}`.",
        "[Unit]",
        f"Description=edgefleet serve: {bundle} {version}".rstrip(),
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Container]",
        f"ContainerName={name}",
        f"Image={ref}",
        f"PublishPort={http_port}:{HTTP_PORT}",
        f"PublishPort={grpc_port}:{GRPC_PORT}",
        f"User={image.user.uid}",
        f"Group={image.user.gid}",
        "ReadOnly=true",
        "VolatileTmp=true",
        "NoNewPrivileges=true",
        "DropCapability=all",
    ]
    if health:
        lines += [
            f"HealthCmd={health}",
            "HealthInterval=10s",
            "HealthTimeout=3s",
            "HealthRetries=3",
            "HealthStartPeriod=5s",
        ]
    lines += [f"PodmanArgs={arg}" for arg in podman_args]
    lines += [
        "",
        "[Service]",
        "Restart=on-failure",
        "TimeoutStartSec=120",
        "",
        "[Install]",
        "WantedBy=multi-user.target default.target",
        "",
    ]
    return "\n".join(lines)
