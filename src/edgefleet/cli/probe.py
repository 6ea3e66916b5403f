"""`edgefleet probe`: the inventory of this device, as sections for people or JSON for programs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgefleet.cli.context import cli_context

if TYPE_CHECKING:
    from edgefleet.probe.inventory import Inventory
    from edgefleet.probe.model import Section
    from edgefleet.probe.paths import ProbePaths

__all__ = ["probe", "render"]

_BYTES = ("_bytes",)


def _paths(root: Path | None, overrides: dict[str, Path | None]) -> ProbePaths:
    from edgefleet.probe.errors import ProbeRootError
    from edgefleet.probe.paths import ProbePaths

    for option, path in {
        "--root": root,
        **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()},
    }.items():
        if path is not None and not path.is_dir():
            raise ProbeRootError(
                f"{option} {path}: not a directory (give the root of a copied or mounted tree)",
                option=option,
                path=str(path),
            )
    paths = ProbePaths.under(root) if root is not None else ProbePaths()
    return replace(
        paths,
        proc=overrides["proc"] or paths.proc,
        sys=overrides["sys"] or paths.sys,
        dev=overrides["dev"] or paths.dev,
        etc=overrides["etc"] or paths.etc,
        device_tree=overrides["device_tree"] or paths.device_tree,
    )


def probe(
    ctx: typer.Context,
    *,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the inventory as JSON (schema: docs/probe.schema.json).")
    ] = False,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of --json and exit.")
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(help="Probe a copied tree: ROOT/proc, ROOT/sys, ROOT/dev, ROOT/etc, ROOT/run."),
    ] = None,
    proc: Annotated[Path | None, typer.Option(help="Where /proc is.")] = None,
    sys: Annotated[Path | None, typer.Option(help="Where /sys is.")] = None,
    dev: Annotated[Path | None, typer.Option(help="Where /dev is.")] = None,
    etc: Annotated[Path | None, typer.Option(help="Where /etc is.")] = None,
    device_tree: Annotated[Path | None, typer.Option(help="Where /proc/device-tree is.")] = None,
) -> None:
    """Inventory this device: CPU, memory, kernel, cgroups, namespaces, security, accelerators,
    cameras, runtimes, thermal. Values that cannot be read are shown as unknown, with the reason."""
    c = cli_context(ctx)
    from edgefleet.probe.inventory import collect, inventory_schema

    if schema:
        typer.echo(json.dumps(inventory_schema(), indent=2))
        return
    paths = _paths(root, {"proc": proc, "sys": sys, "dev": dev, "etc": etc, "device_tree": device_tree})
    inventory = collect(paths)
    if as_json:
        typer.echo(inventory.model_dump_json(indent=2))
        return
    render(inventory, c.out)


def _size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{value} B"
        size /= 1024
    return str(value)


def _cpus(values: list[int]) -> str:
    if not values:
        return "none"
    runs: list[str] = []
    start = prev = values[0]
    for n in [*values[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        runs.append(f"{start}-{prev}" if prev != start else str(start))
        if n is not None:
            start = prev = n
    return ",".join(runs)


def _value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and name.endswith(_BYTES):
        return _size(value)
    if isinstance(value, list) and name in {"online", "isolated", "nohz_full"}:
        return _cpus(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "none"
    return str(value)


def _fields(title: str, section: Section | None, skip: set[str], reason: str | None) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None)
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    if section is None:
        table.add_row("", f"[yellow]unknown[/]: {escape(reason or 'not collected')}")
        return table
    for name in type(section).model_fields:
        if name == "unknown" or name in skip:
            continue
        value = getattr(section, name)
        if value is None and name in section.unknown:
            shown = f"[yellow]unknown[/]: [dim]{escape(section.unknown[name])}[/]"
        elif value is None:
            shown = "[dim]n/a[/]"
        else:
            shown = escape(_value(name, value))
        table.add_row(name.removesuffix("_bytes").replace("_", " "), shown)
    return table


def _rows(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=i < len(columns) - 1)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _cgroup_controllers(inventory: Inventory, out: Console) -> None:
    cgroups = inventory.cgroups
    if cgroups is None or cgroups.controllers is None:
        return
    rows = [
        [c.name, f"v{c.version}", _value("", c.writable), _value("", c.enabled_for_children), c.cgroup or ""]
        for c in cgroups.controllers
    ]
    if rows:
        out.print(
            _rows("cgroup controllers", ["controller", "version", "writable", "for children", "cgroup"], rows)
        )
    else:
        out.print("[bold]cgroup controllers[/]: none usable")


def _accelerators(inventory: Inventory, out: Console) -> None:
    acc = inventory.accelerators
    if acc is None or acc.devices is None:
        out.print(_fields("Accelerators", acc, {"opencl_icds"}, inventory.unknown.get("accelerators")))
        return
    rows = [
        [
            d.kind,
            d.vendor,
            d.model,
            " ".join(x for x in (d.address, d.pci_id, d.usb_id) if x),
            d.device_node or "",
            d.driver or "none",
            ", ".join(r + (" (usable)" if r in d.usable_runtimes else "") for r in d.runtimes)
            or "none known",
        ]
        for d in acc.devices
    ]
    if rows:
        columns = ["kind", "vendor", "model", "bus ids", "node", "driver", "runtimes"]
        out.print(_rows("Accelerators", columns, rows))
    else:
        out.print("[bold]Accelerators[/]: none found (CPU only)")
    if acc.opencl_icds:
        out.print("OpenCL ICDs: " + escape(", ".join(f"{i.name} ({i.library})" for i in acc.opencl_icds)))


def _cameras(inventory: Inventory, out: Console) -> None:
    cams = inventory.cameras
    if cams is None or cams.cameras is None:
        out.print(_fields("Cameras", cams, {"skipped"}, inventory.unknown.get("cameras")))
        return
    rows = [
        [c.device_node, c.card, c.driver, c.bus_info, c.usb_id or "", ", ".join(c.capabilities)]
        for c in cams.cameras
    ]
    if rows:
        out.print(_rows("Cameras", ["node", "card", "driver", "bus", "usb id", "capabilities"], rows))
    else:
        out.print("[bold]Cameras[/]: no V4L2 capture device")
    for skipped in cams.skipped or []:
        out.print(f"[dim]  skipped {escape(skipped.device_node)}: {escape(skipped.reason)}[/]")


def _runtimes(inventory: Inventory, out: Console) -> None:
    rt = inventory.runtimes
    if rt is None or rt.onnxruntime is None or rt.others is None:
        out.print(_fields("Runtimes", rt, set(), inventory.unknown.get("runtimes")))
        return
    ort = rt.onnxruntime
    rows = [["onnxruntime", ort.version or "", ", ".join(ort.providers)]] if ort.installed else []
    rows += [[r.name, "", r.found or ""] for r in rt.others if r.installed]
    out.print(_rows("Runtimes", ["runtime", "version", "providers / found as"], rows))
    missing = [r.name for r in rt.others if not r.installed] + ([] if ort.installed else ["onnxruntime"])
    if missing:
        out.print(f"[dim]  not installed: {escape(', '.join(missing))}[/]")


def _thermal(inventory: Inventory, out: Console) -> None:
    th = inventory.thermal
    if th is None or th.zones is None or th.power_supplies is None:
        out.print(_fields("Thermal and power", th, set(), inventory.unknown.get("thermal")))
        return
    rows = [
        [z.name, z.type or "", f"{z.celsius:.1f} °C" if z.celsius is not None else "no reading"]
        for z in th.zones
    ]
    for p in th.power_supplies:
        state = [p.status or "", f"{p.capacity_percent}%" if p.capacity_percent is not None else ""]
        state.append({True: "online", False: "offline", None: ""}[p.online])
        rows.append([p.name, p.type or "", " ".join(x for x in state if x)])
    if rows:
        out.print(_rows("Thermal and power", ["name", "type", "reading"], rows))
    else:
        out.print("[bold]Thermal and power[/]: no thermal zone or power supply exposed")


def render(inventory: Inventory, out: Console) -> None:
    """Print the inventory as one block per section."""
    version = f"schema {inventory.schema_version}, edgefleet {inventory.edgefleet_version}"
    out.print(f"[bold]edgefleet probe[/] ({version})")
    for title, name, skip in (
        ("Host", "host", set()),
        ("CPU", "cpu", {"governors"}),
        ("Memory", "memory", set()),
        ("Kernel", "kernel", {"cmdline"}),
        ("cgroups", "cgroups", {"hierarchies", "controllers"}),
    ):
        out.print()
        out.print(_fields(title, getattr(inventory, name), skip, inventory.unknown.get(name)))
    _cgroup_controllers(inventory, out)
    for title, name in (("Namespaces", "namespaces"), ("Security", "security")):
        out.print()
        out.print(_fields(title, getattr(inventory, name), set(), inventory.unknown.get(name)))
    for part in (_accelerators, _cameras, _runtimes, _thermal):
        out.print()
        part(inventory, out)
    for name, reason in inventory.unknown.items():
        out.print(f"[red]section {escape(name)} failed[/]: {escape(reason)}")
