"""`edgefleet tune`: plan, apply, verify and revert OS tuning profiles (thin over edgefleet.tuning)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgefleet.cli.context import CliContext, cli_context

if TYPE_CHECKING:
    from edgefleet.tuning import Check, RecoveryReport, Step, Tuner

__all__ = ["tune_app"]

tune_app = typer.Typer(
    name="tune",
    help="Kernel and OS tuning profiles: plan, apply, verify, revert (tuned-compatible).",
    no_args_is_help=True,
)

_ACTION_STYLE = {
    "set": "bold yellow",
    "ok": "green",
    "keep": "green",
    "unsupported": "dim",
    "advice": "magenta",
    "hold": "cyan",
}
_VERDICT_STYLE = {"passed": "green", "failed": "bold red", "skipped": "dim", "advice": "magenta"}


@dataclass(frozen=True)
class _Options:
    profile_dirs: list[Path] | None
    state_dir: Path | None
    root: Path | None


@tune_app.callback()
def tune_root(
    ctx: typer.Context,
    profiles_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--profiles-dir",
            help="User profile directory (repeatable; searched before the built-ins). "
            "Default: <data_dir>/tune/profiles, then /etc/edgefleet/tune.",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the journal of originals lives. Default: <data_dir>/tune.")
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Treat this directory as / for proc/sys, sys, proc/irq, dev/cpu_dma_latency, proc/cmdline "
            "and tuned detection (fixture trees, chroots)."
        ),
    ] = None,
) -> None:
    """Options shared by every tune command."""
    ctx.meta["edgefleet.tune"] = _Options(profiles_dir, state_dir, root)


def _tuner(ctx: typer.Context) -> tuple[CliContext, Tuner]:
    from edgefleet.tuning import ProfileStore, Roots, SystemTunedDetector, Tuner, default_profile_dirs
    from edgefleet.tuning import default_state_dir as _state

    c = cli_context(ctx)
    opts: _Options = ctx.meta["edgefleet.tune"]
    roots = Roots.under(opts.root) if opts.root else Roots()
    tuned = (
        SystemTunedDetector(
            proc=opts.root / "proc",
            run_dir=opts.root / "run" / "tuned",
            bus_socket=opts.root / "run" / "dbus" / "system_bus_socket",
        )
        if opts.root
        else SystemTunedDetector()
    )
    store = ProfileStore(opts.profile_dirs or default_profile_dirs(c.settings))
    state = opts.state_dir or _state(c.settings)
    return c, Tuner(state_dir=state, store=store, roots=roots, tuned=tuned)


def _print_recovered(c: CliContext, rec: RecoveryReport | None) -> None:
    if rec is None:
        return
    if rec.stale_boot:
        c.err.print(f"[yellow]dropped the journal of '{rec.profile}' from a previous boot[/]")
        return
    c.err.print(
        f"[yellow]recovered from an interrupted {rec.state} of '{rec.profile}': "
        f"restored {len(rec.restored)} original(s)[/]"
        + (f", [red]{len(rec.failed)} could not be restored[/]" if rec.failed else "")
    )


@tune_app.command("list")
def list_profiles(ctx: typer.Context) -> None:
    """List built-in and user profiles."""
    c, tuner = _tuner(ctx)
    table = Table(title="tuning profiles")
    for col in ("name", "origin", "description"):
        table.add_column(col)
    for info in tuner.store.infos():
        table.add_row(
            info.name, "built-in" if info.builtin else escape(str(info.path)), escape(info.description)
        )
    c.out.print(table)


@tune_app.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """Show a profile with its includes resolved: each knob, its value and why."""
    c, tuner = _tuner(ctx)
    profile = tuner.store.load(name)
    c.out.print(f"[bold]{profile.name}[/]: {escape(profile.description)}")
    if profile.includes:
        c.out.print(f"includes: {', '.join(profile.includes)}")
    table = Table()
    for col in ("knob", "value", "from", "comment"):
        table.add_column(col, overflow="fold")
    for s in profile.settings:
        table.add_row(escape(s.label), escape(s.value), f"{s.source.name}:{s.line}", escape(s.comment))
    c.out.print(table)


_JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _step_dict(st: Step) -> dict[str, object]:
    return {
        "knob": st.setting.label,
        "file": st.key,
        "current": st.current,
        "target": st.target,
        "action": st.action,
        "needs_reboot": st.needs_reboot,
        "note": st.note,
        "source": f"{st.setting.source}:{st.setting.line}",
    }


@tune_app.command("plan")
def plan(ctx: typer.Context, name: str, as_json: _JSON = False) -> None:
    """What applying NAME would change: knob, current, target, action, needs reboot. Writes nothing."""
    c, tuner = _tuner(ctx)
    p = tuner.plan(name)
    if as_json:
        c.out.print_json(data={"profile": name, "steps": [_step_dict(st) for st in p.steps]})
        return
    table = Table(title=f"plan for {name}")
    for col in ("knob", "file", "current", "target", "action", "needs reboot", "note"):
        table.add_column(col, overflow="fold")
    for st in p.steps:
        style = _ACTION_STYLE.get(st.action, "")
        table.add_row(
            escape(st.setting.label),
            escape(st.key),
            escape(st.current) if st.current is not None else "-",
            escape(st.target) if st.target is not None else "-",
            f"[{style}]{st.action}[/]",
            "yes" if st.needs_reboot else "",
            escape(st.note),
        )
    c.out.print(table)
    c.out.print(f"{len(p.writes)} write(s); nothing was changed")


@tune_app.command("apply")
def apply(
    ctx: typer.Context,
    name: str,
    hold: Annotated[
        bool,
        typer.Option(
            "--hold",
            help="Stay in the foreground holding the PM QoS latency limit until interrupted (Ctrl-C).",
        ),
    ] = False,
) -> None:
    """Apply NAME: journal the originals, then write every knob (all or nothing)."""
    import signal
    import threading

    c, tuner = _tuner(ctx)
    report = tuner.apply(name)
    _print_recovered(c, report.recovered)
    c.out.print(
        f"applied [bold]{name}[/]: {len(report.written)} write(s)"
        + (
            f", restored {len(report.restored)} file(s) the previous profile had changed"
            if report.restored
            else ""
        )
    )
    for step, reason in report.refused:
        c.err.print(
            f"[yellow]kernel refused[/] {escape(f'{step.key} = {step.target!r}: {reason}')} (kept as it was)"
        )
    unsupported = [s for s in report.plan.steps if s.action == "unsupported"]
    if unsupported:
        c.out.print(
            f"{len(unsupported)} knob(s) unsupported here (skipped): "
            + ", ".join(sorted({s.setting.label for s in unsupported}))
        )
    for s in report.plan.steps:
        if s.action == "advice":
            c.out.print(
                f"[magenta]needs reboot[/]: add {escape(s.target or '')} to the kernel command line "
                f"({escape(s.setting.comment)})"
            )
    if not report.holds:
        return
    if not hold:
        for s in report.holds:
            c.out.print(
                f"[cyan]PM QoS[/] {s.setting.label}={s.target} µs is in force only while a process holds "
                f"{s.key} open: the edgefleet agent does, or run `edgefleet tune apply {name} --hold`"
            )
        return
    holds = tuner.hold(report)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    c.out.print(f"holding {len(holds)} PM QoS limit(s); Ctrl-C or SIGTERM releases them")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for h in holds:
            h.close()


@tune_app.command("verify")
def verify(
    ctx: typer.Context, name: Annotated[str | None, typer.Argument()] = None, as_json: _JSON = False
) -> None:
    """Re-read every knob of NAME (default: the applied profile) and compare by tuned's rules."""
    from edgefleet.tuning.errors import TuneVerifyError

    c, tuner = _tuner(ctx)
    profile, checks = tuner.verify(name)
    failed = [ch for ch in checks if ch.verdict == "failed"]
    if as_json:
        rows = [
            {**_step_dict(ch.step), "current": ch.current, "verdict": ch.verdict, "detail": ch.detail}
            for ch in checks
        ]
        c.out.print_json(data={"profile": profile, "checks": rows})
    else:
        _verify_table(c, profile, checks)
    if failed:
        raise TuneVerifyError(
            f"{len(failed)} of {len(checks)} check(s) failed for profile {profile!r}",
            profile=profile,
            failed=[ch.step.key for ch in failed],
        )
    if not as_json:
        c.out.print(f"[green]verified[/] {profile}: {sum(ch.verdict == 'passed' for ch in checks)} passed")


def _verify_table(c: CliContext, profile: str, checks: list[Check]) -> None:
    table = Table(title=f"verify {profile}")
    for col in ("knob", "file", "current", "expected", "result", "detail"):
        table.add_column(col, overflow="fold")
    for ch in checks:
        style = _VERDICT_STYLE[ch.verdict]
        table.add_row(
            escape(ch.step.setting.label),
            escape(ch.step.key),
            escape(ch.current) if ch.current is not None else "-",
            escape(ch.step.target or ch.step.setting.value),
            f"[{style}]{ch.verdict}[/]",
            escape(ch.detail),
        )
    c.out.print(table)


@tune_app.command("revert")
def revert(ctx: typer.Context) -> None:
    """Write back every original the applied profile changed, byte for byte."""
    from edgefleet.tuning.errors import TuneWriteError

    c, tuner = _tuner(ctx)
    report = tuner.revert()
    _print_recovered(c, report.recovered)
    if report.profile is None:
        c.out.print("nothing to revert: no profile is applied")
        return
    if report.failed:
        raise TuneWriteError(
            f"could not restore {len(report.failed)} file(s): "
            + "; ".join(f"{k}: {why}" for k, why in report.failed)
            + " (they stay in the journal; run revert again)",
            failed=[k for k, _ in report.failed],
        )
    c.out.print(f"reverted [bold]{report.profile}[/]: restored {len(report.restored)} file(s)")


@tune_app.command("recover")
def recover(ctx: typer.Context) -> None:
    """Undo an apply or revert that a crash interrupted (also done by apply, revert and status)."""
    c, tuner = _tuner(ctx)
    rec = tuner.recover()
    if rec is None:
        c.out.print("nothing to recover")
    _print_recovered(c, rec)


@tune_app.command("status")
def status(ctx: typer.Context, as_json: _JSON = False) -> None:
    """The applied profile, the journal, and whether tuned is running."""
    c, tuner = _tuner(ctx)
    st = tuner.status()
    _print_recovered(c, st.recovered)
    if as_json:
        data = {"profile": st.profile, "state": st.state, "originals": st.originals}
        c.out.print_json(data={**data, "journal": str(st.journal), "tuned": st.tuned})
        return
    c.out.print(
        f"profile: {st.profile or '(none applied)'}" + (f" ({st.state})" if st.state else ""), markup=False
    )
    c.out.print(f"journal: {st.journal} ({st.originals} original(s) saved)", markup=False)
    c.out.print(f"tuned: {st.tuned or 'not running'}", markup=False)


@tune_app.command("export")
def export(
    ctx: typer.Context,
    name: str,
    directory: Path,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing tuned.conf.")] = False,
) -> None:
    """Write profile NAME as a tuned profile directory (DIRECTORY/tuned.conf)."""
    from edgefleet.tuning.tunedconf import export_tuned

    c, tuner = _tuner(ctx)
    path = export_tuned(tuner.store.load(name), directory, force=force)
    c.out.print(
        f"wrote {path}; for tuned, place it as /etc/tuned/{directory.name}/ and run "
        f"`tuned-adm profile {directory.name}`"
    )


@tune_app.command("import")
def import_(
    ctx: typer.Context,
    directory: Path,
    name: Annotated[str | None, typer.Option(help="Profile name. Default: the directory's name.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing profile.")] = False,
) -> None:
    """Import a tuned profile directory (DIRECTORY/tuned.conf) as a user profile."""
    from edgefleet.tuning.tunedconf import import_tuned

    c, tuner = _tuner(ctx)
    dest = tuner.store.user_dirs[0] if tuner.store.user_dirs else Path.cwd()
    path = import_tuned(directory, dest, name, force=force)
    c.out.print(f"imported {directory / 'tuned.conf'} as {path}")
