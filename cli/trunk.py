"""`pbx trunk add|list|set|del|status`: SIP trunks to providers and other sites.

add/list/set/del edit the database; the running server picks changes up within a second
or so (it registers, re-registers or un-registers as needed). `status` asks the running
server: registered until when, or failed with which status and reason, next retry.
Passwords are shown by `list` only with `--show-passwords`.
Errors end in one `pbx: error: …` line with exit status 1.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from pbx import control
from pbx.config import Settings
from pbx.errors import ConfigError, ControlError
from pbx.store import Trunk
from pbx.store.trunks import check_trunk, parse_host_port
from pbx.trunks import ResolveError, resolve

trunk_app = typer.Typer(
    name="trunk",
    help="SIP trunks: providers and other sites the switch registers to and calls through.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The trunk's name.")]
HostOption = Annotated[
    str | None, typer.Option("--host", help="HOST[:PORT] of the provider (IP or name).")
]
TransportOption = Annotated[str | None, typer.Option(help="udp or tcp.")]
UsernameOption = Annotated[str | None, typer.Option(help="The account (user part of the AOR).")]
AuthUserOption = Annotated[
    str | None, typer.Option("--auth-user", help="Digest user name, when not the username.")
]
PasswordOption = Annotated[str | None, typer.Option(help="Digest password (stored, never logged).")]
FromUserOption = Annotated[str | None, typer.Option("--from-user", help="User part of From.")]
FromDomainOption = Annotated[
    str | None, typer.Option("--from-domain", help="Domain of From and of the AOR.")
]
RegisterOption = Annotated[
    bool | None, typer.Option("--register/--no-register", help="Keep a registration alive.")
]
ExpiresOption = Annotated[int | None, typer.Option(help="Registration expiry asked (seconds).")]
CodecsOption = Annotated[str | None, typer.Option(help="Comma list, e.g. PCMA,PCMU.")]
ChannelsOption = Annotated[
    int | None, typer.Option("--max-channels", help="Calls at once (0: no limit).")
]
CallerIdOption = Annotated[
    str | None, typer.Option("--caller-id", help="Outbound caller ID for calls through it.")
]
InboundOption = Annotated[
    str | None,
    typer.Option(
        "--inbound",
        help="Source addresses/CIDRs whose INVITEs are this trunk's (comma list; '' clears).",
    ),
]
InboundContactOption = Annotated[
    bool | None,
    typer.Option(
        "--inbound-contact/--no-inbound-contact",
        help="Recognise inbound calls by the contact the switch registered.",
    ),
]


SkipResolveOption = Annotated[
    bool,
    typer.Option("--skip-resolve", help="Store a host name even if it does not resolve now."),
]


async def _check_resolves(trunk: Trunk, skip: bool) -> None:
    """Refuse a host name that does not resolve (unless told). Raises: ConfigError."""
    if skip:
        return
    try:
        await resolve(trunk)
    except ResolveError as exc:
        raise ConfigError(
            f"host {trunk.host!r} does not resolve: {exc} (--skip-resolve stores it anyway)"
        ) from None


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _changes(
    host: str | None,
    transport: str | None,
    username: str | None,
    auth_user: str | None,
    password: str | None,
    from_user: str | None,
    from_domain: str | None,
    register: bool | None,
    expires: int | None,
    codecs: str | None,
    max_channels: int | None,
    caller_id: str | None,
    inbound: str | None,
    inbound_contact: bool | None,
) -> dict[str, Any]:
    """The options given, as Trunk fields. Raises: ConfigError (bad host:port)."""
    changes: dict[str, Any] = {}
    if host is not None:
        changes["host"], changes["port"] = parse_host_port(host)
    plain = {
        "transport": transport,
        "username": username,
        "auth_user": auth_user,
        "password": password,
        "from_user": from_user,
        "from_domain": from_domain,
        "register": register,
        "expires": expires,
        "max_channels": max_channels,
        "caller_id": caller_id,
        "inbound_contact": inbound_contact,
    }
    changes.update({k: v for k, v in plain.items() if v is not None})
    if codecs is not None:
        changes["codecs"] = _list(codecs)
    if inbound is not None:
        changes["inbound_networks"] = _list(inbound)
    return changes


@trunk_app.command("add")
def trunk_add(
    name: NameArgument,
    host: HostOption = None,
    transport: TransportOption = None,
    username: UsernameOption = None,
    auth_user: AuthUserOption = None,
    password: PasswordOption = None,
    from_user: FromUserOption = None,
    from_domain: FromDomainOption = None,
    register: RegisterOption = None,
    expires: ExpiresOption = None,
    codecs: CodecsOption = None,
    max_channels: ChannelsOption = None,
    caller_id: CallerIdOption = None,
    inbound: InboundOption = None,
    inbound_contact: InboundContactOption = None,
    skip_resolve: SkipResolveOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Add a trunk (--host is required)."""
    if host is None:
        raise ConfigError("a trunk needs --host HOST[:PORT]")
    changes = _changes(
        host, transport, username, auth_user, password, from_user, from_domain, register,
        expires, codecs, max_channels, caller_id, inbound, inbound_contact,
    )  # fmt: skip

    async def go() -> Trunk:
        async with await open_existing(data_dir_of(data_dir)) as store:
            trunk = check_trunk(Trunk(name=name, **changes))
            await _check_resolves(trunk, skip_resolve)
            return await store.trunks.add(trunk)

    trunk = run(go())
    what = "registers" if trunk.register else "does not register"
    typer.echo(f"added trunk {trunk.name} ({trunk.transport} {trunk.hostport}, {what})")


@trunk_app.command("set")
def trunk_set(
    name: NameArgument,
    host: HostOption = None,
    transport: TransportOption = None,
    username: UsernameOption = None,
    auth_user: AuthUserOption = None,
    password: PasswordOption = None,
    from_user: FromUserOption = None,
    from_domain: FromDomainOption = None,
    register: RegisterOption = None,
    expires: ExpiresOption = None,
    codecs: CodecsOption = None,
    max_channels: ChannelsOption = None,
    caller_id: CallerIdOption = None,
    inbound: InboundOption = None,
    inbound_contact: InboundContactOption = None,
    skip_resolve: SkipResolveOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Change some fields of a trunk."""
    changes = _changes(
        host, transport, username, auth_user, password, from_user, from_domain, register,
        expires, codecs, max_channels, caller_id, inbound, inbound_contact,
    )  # fmt: skip
    if not changes:
        raise ConfigError("nothing to change (see `pbx trunk set --help`)")

    async def go() -> Trunk:
        async with await open_existing(data_dir_of(data_dir)) as store:
            if "host" in changes:
                current = await store.trunks.get(name)
                await _check_resolves(replace(current, host=changes["host"]), skip_resolve)
            return await store.trunks.update(name, **changes)

    trunk = run(go())
    typer.echo(f"changed trunk {trunk.name}: {', '.join(sorted(changes))}")


@trunk_app.command("del")
def trunk_del(name: NameArgument, data_dir: DataDirOption = None) -> None:
    """Delete a trunk (the running server un-registers it)."""

    async def go() -> None:
        async with await open_existing(data_dir_of(data_dir)) as store:
            await store.trunks.delete(name)

    run(go())
    typer.echo(f"deleted trunk {name}")


@trunk_app.command("list")
def trunk_list(
    show_passwords: Annotated[
        bool, typer.Option("--show-passwords", help="Show the stored passwords too.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Show the trunks (passwords as *** unless --show-passwords)."""

    async def go() -> list[Trunk]:
        async with await open_existing(data_dir_of(data_dir)) as store:
            return await store.trunks.all()

    trunks = run(go())
    if not trunks:
        typer.echo("no trunks")
        return
    rows = []
    for t in trunks:
        secret = t.password if show_passwords else ("***" if t.password else "")
        inbound = [*t.inbound_networks, *(["contact"] if t.inbound_contact else [])]
        rows.append(
            (
                t.name,
                f"{t.transport} {t.hostport}",
                t.username,
                t.auth_user,
                secret,
                "yes" if t.register else "no",
                ",".join(t.codecs),
                str(t.max_channels or "-"),
                t.caller_id,
                ",".join(inbound),
            )
        )
    headers = ("NAME", "HOST", "USERNAME", "AUTH USER", "PASSWORD", "REGISTER", "CODECS",
               "CHANNELS", "CALLER ID", "INBOUND")  # fmt: skip
    typer.echo(format_table(headers, rows))


def _when(wall: Any, now: float) -> str:
    if not isinstance(wall, int | float):
        return ""
    stamp = datetime.fromtimestamp(wall).strftime("%H:%M:%S")
    return f"{stamp} (in {max(0, round(wall - now))} s)"


def status_line(row: dict[str, Any], now: float) -> str:
    """How `pbx trunk status` words one trunk's state."""
    state = str(row.get("state", ""))
    failure = row.get("failure")
    if state == "registered" and row.get("registered_until") is not None:
        return f"registered until {_when(row['registered_until'], now)}"
    if isinstance(failure, dict):
        status = failure.get("status")
        reason = str(failure.get("reason") or "")
        text = f"failed: {status} {reason}" if status is not None else f"failed: {reason}"
        if row.get("next_retry") is not None:
            text += f"; next retry {_when(row['next_retry'], now)}"
        return text
    if state == "off":
        return "not registering"
    return state


@trunk_app.command("status")
def trunk_status(data_dir: DataDirOption = None) -> None:
    """Ask the running server how each trunk's registration stands."""
    result = control.request(Settings(data_dir=data_dir_of(data_dir)), "/trunks")
    trunks = result.get("trunks")
    if not isinstance(trunks, list):
        raise ControlError("the server sent a trunk status this pbx does not understand")
    if not trunks:
        typer.echo("no trunks")
        return
    now = time.time()
    rows = []
    for row in trunks:
        if not isinstance(row, dict):
            raise ControlError("the server sent a trunk status this pbx does not understand")
        limit = row.get("max_channels") or "-"
        rows.append(
            (
                str(row.get("name", "")),
                str(row.get("host", "")),
                status_line(row, now),
                f"{row.get('channels', 0)}/{limit}",
            )
        )
    typer.echo(format_table(("NAME", "HOST", "STATE", "CHANNELS"), rows))
