"""The `pbx` command: set up a data directory, run the server, manage users, show status.

Offline commands (init, user …) work on the database in the data directory;
`status` asks the running server through its control API. Every error a user
can cause ends in exactly one line on stderr (`pbx: error: …`) and a non-zero
exit status: 1 for errors of the request, 2 for usage errors (unknown option,
missing argument, bad number), as click does.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import importlib.metadata
import inspect
import io
import json
import logging
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from cli.agent import agent_app
from cli.amd import amd_app
from cli.ban import ban_app, trust_app
from cli.call import call_app
from cli.campaign import campaign_app
from cli.common import DataDirOption, format_table, set_global_data_dir
from cli.common import data_dir_of as _data_dir
from cli.common import open_existing as _open_existing
from cli.common import run as _run
from cli.conf import conf_app
from cli.customer import customer_app
from cli.did import did_app
from cli.dnc import dnc_app
from cli.dtmf import dtmf_app
from cli.erlang import erlang_command
from cli.events import events as events_command
from cli.ivr import ivr_app
from cli.ivr import references as ivr_references
from cli.kb import kb_app
from cli.moh import moh_app
from cli.prompt import prompt_app
from cli.queue import queue_app
from cli.route import route_app
from cli.sim import sim_app
from cli.supervise import add_supervise_commands
from cli.ticket import ticket_app
from cli.trunk import trunk_app
from cli.vm import vm_app
from pbx.config import Settings
from pbx.errors import ConfigError, ControlError, PbxError
from pbx.store import REALM_KEY, SECRET_KEY, DeletedUser, Forwarding, RingGroup, Store
from pbx.store.dialplan import members_of
from pbx.users import check_display_name, check_password, check_username, generate_password

T = TypeVar("T")

HINT_ADD_USER = "next: add a phone account with `pbx user add 1001`"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(message: str) -> None:
    """Write the one error line the house promises."""
    typer.echo(f"pbx: error: {_one_line(message)}", err=True)


class OneLineErrorGroup(TyperGroup):
    """A typer group whose `main` turns every user-caused error into one stderr line.

    click prints usage errors over several lines and typer may draw rich panels;
    (typer >= 0.2x vendors click: its errors derive from `typer.exceptions.TyperException`);
    here a usage error is `pbx: error: MESSAGE (see 'pbx … --help')` and exit 2, a
    `PbxError` is `pbx: error: MESSAGE` and exit 1.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except TyperException as exc:  # click's errors (typer vendors click as typer._click)
            code = exc.exit_code
            ctx = getattr(exc, "ctx", None)  # usage errors know their command
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)  # the help page, as click does
            elif ctx is not None:
                error_line(f"{_one_line(exc.format_message())} (see '{ctx.command_path} --help')")
            else:
                error_line(exc.format_message())
        except typer.Abort:
            error_line("aborted")
            code = 1
        except PbxError as exc:
            error_line(str(exc))
            code = 1
        else:
            if not standalone_mode:
                return rv
            code = rv if isinstance(rv, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="pbx",
    cls=OneLineErrorGroup,
    help="aiopbx: a SIP registrar and softswitch in one Python process.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(
    name="user",
    help="Manage SIP user accounts (phones log in with these).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(user_app)
app.command("events")(events_command)


def _installed_version() -> str:
    try:
        return importlib.metadata.version("aiopbx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"pbx (aiopbx) {_installed_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    data_dir: DataDirOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """aiopbx: a SIP registrar and softswitch in one Python process."""
    set_global_data_dir(data_dir)  # `pbx --data-dir DIR status` as `pbx status --data-dir DIR`


app.add_typer(amd_app, name="amd")
app.add_typer(ban_app, name="ban")
app.add_typer(trust_app, name="trust")
app.add_typer(call_app, name="call")
app.add_typer(dtmf_app, name="dtmf")
app.add_typer(ivr_app, name="ivr")
app.add_typer(moh_app, name="moh")
app.add_typer(prompt_app, name="prompt")
app.add_typer(trunk_app, name="trunk")
app.add_typer(route_app, name="route")
app.add_typer(did_app, name="did")
app.add_typer(sim_app, name="sim")
app.add_typer(vm_app, name="vm")
app.add_typer(conf_app, name="conf")
app.add_typer(customer_app, name="customer")
app.add_typer(kb_app, name="kb")
app.add_typer(ticket_app, name="ticket")
app.command("erlang")(erlang_command)
app.add_typer(queue_app, name="queue")
add_supervise_commands(agent_app)  # pbx agent spy|whisper|barge (acd.supervisor)
app.add_typer(agent_app, name="agent")
app.add_typer(campaign_app, name="campaign")
app.add_typer(dnc_app, name="dnc")

PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        "-p",
        help="The password (it stays in your shell history); default: generate a strong one.",
        show_default=False,
    ),
]


@dataclasses.dataclass(frozen=True, slots=True)
class _InitResult:
    created: bool
    realm: str
    users: int


async def _initialize(settings: Settings, realm_given: bool) -> _InitResult:
    """Create the database when missing and store the realm and a control secret.

    Raises:
        ConfigError: the database exists with a different realm than the one given.
    """
    async with await Store.open(settings.db_path) as store:
        stored_realm = await store.settings.get(REALM_KEY)
        stored_secret = await store.settings.get(SECRET_KEY)
        if realm_given and stored_realm is not None and stored_realm != settings.realm:
            raise ConfigError(
                f"{settings.data_dir} already uses realm {stored_realm!r}; changing it would "
                "invalidate every password"
            )
        realm = await store.settings.set_default(REALM_KEY, settings.realm)
        await store.settings.set_default(SECRET_KEY, secrets.token_urlsafe(32))
        users = await store.users.count()
    return _InitResult(
        created=stored_realm is None or stored_secret is None, realm=realm, users=users
    )


def _settings(data_dir: Path | None, **changes: Any) -> Settings:
    """Settings with the given values; Raises: ConfigError for a bad value."""
    settings = dataclasses.replace(Settings(data_dir=_data_dir(data_dir)), **changes)
    settings.validate()
    return settings


@app.command()
def init(
    data_dir: DataDirOption = None,
    realm: Annotated[
        str | None,
        typer.Option(help="SIP digest realm (fixed once users exist).", show_default=False),
    ] = None,
) -> None:
    """Create the data directory and its database (does nothing if it exists)."""
    settings = _settings(data_dir, **({"realm": realm} if realm is not None else {}))
    result = _run(_initialize(settings, realm_given=realm is not None))
    if result.created:
        typer.echo(f"initialized {settings.data_dir} (realm {result.realm!r})")
    else:
        typer.echo(f"{settings.data_dir} is already initialized (realm {result.realm!r})")
    typer.echo(f"database: {settings.db_path}")
    _echo_certificate(_import("acd.web.tls").ensure_certificate(settings.data_dir))
    if result.users == 0:
        typer.echo(HINT_ADD_USER)


def _echo_certificate(made: Any) -> None:
    """Where the web console's certificate is and its fingerprint (acd.web.tls)."""
    verb = "made" if made.created else "is"
    typer.echo(f"web console certificate {verb} {made.cert}")
    typer.echo(f"  SHA-256 fingerprint {made.fingerprint}")


def _import(name: str) -> ModuleType:
    """Import a module of the server lazily (other commands must not need it).

    Raises:
        PbxError: the module is not part of this installation.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise PbxError(f"this aiopbx installation has no {name} module") from exc


@app.command()
def serve(
    data_dir: DataDirOption = None,
    host: Annotated[
        str, typer.Option(help="IP address to listen on for SIP (0.0.0.0: every IPv4 one).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="SIP port (UDP and TCP).")] = 5060,
    udp: Annotated[bool, typer.Option("--udp/--no-udp", help="Listen on UDP.")] = True,
    tcp: Annotated[bool, typer.Option("--tcp/--no-tcp", help="Listen on TCP.")] = True,
    control_port: Annotated[
        int, typer.Option(help="Loopback control API port (0 picks a free one).")
    ] = 0,
    digest: Annotated[
        str,
        typer.Option(
            help="Digest algorithms to offer, most preferred first (MD5, SHA-256, -sess).",
        ),
    ] = "MD5",
    ban_after: Annotated[
        int,
        typer.Option(
            help="Distinct users failing to log in from one address within a minute"
            " before the address is banned (a scanner)."
        ),
    ] = 5,
    ban_seconds: Annotated[float, typer.Option(help="How long a ban lasts (seconds).")] = 600.0,
    refuse_after: Annotated[
        int,
        typer.Option(
            help="Failed logins for one user from one address (within 10 minutes) before"
            " that user is refused from that address."
        ),
    ] = 3,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            help="A network never banned as a whole, e.g. 192.168.1.0/24 (repeatable;"
            " `pbx trust add` stores one).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Log level on stderr: DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    sip_trace: Annotated[
        bool,
        typer.Option(
            "--sip-trace", help="Log every SIP message in and out (passwords' hashes masked)."
        ),
    ] = False,
    hold_timeout: Annotated[
        float, typer.Option(help="Hang up a call held this long (seconds; 0: never).")
    ] = 3600.0,
    media_timeout: Annotated[
        float,
        typer.Option(help="Hang up a call whose phone sent no RTP/RTCP this long (s; 0: never)."),
    ] = 60.0,
    max_calls_per_user: Annotated[
        int, typer.Option(help="Calls one user may have up at once (0: no limit).")
    ] = 4,
    trunk_retry: Annotated[
        float, typer.Option(help="First retry of a failed trunk registration (s; doubles).")
    ] = 30.0,
    web: Annotated[
        bool, typer.Option("--web/--no-web", help="Serve the web console (agent desktop).")
    ] = True,
    web_host: Annotated[str, typer.Option(help="IP address of the web console.")] = "127.0.0.1",
    web_port: Annotated[
        int, typer.Option(help="Port of the web console (0 picks a free one).")
    ] = 8080,
    web_tls: Annotated[
        bool,
        typer.Option(
            "--web-tls",
            help="Serve the web console over HTTPS with the data directory's certificate"
            " (browsers give the microphone only to secure pages).",
        ),
    ] = False,
    web_cert: Annotated[
        Path | None,
        typer.Option(help="HTTPS certificate (PEM) of the web console; needs --web-key."),
    ] = None,
    web_key: Annotated[Path | None, typer.Option(help="Private key (PEM) of --web-cert.")] = None,
    web_phone_codec: Annotated[
        str,
        typer.Option(
            help="What the browser phones prefer: opus (the browsers' choice) or g711"
            " (no transcoding, less CPU per call)."
        ),
    ] = "opus",
) -> None:
    """Run the PBX in the foreground (initializes the data directory on first run)."""
    level = _log_level(log_level)
    settings = _settings(
        data_dir,
        sip_host=host,
        sip_port=port,
        udp=udp,
        tcp=tcp,
        control_port=control_port,
        digest_algorithms=tuple(a.strip() for a in digest.split(",") if a.strip()),
        scan_users=ban_after,
        ban_seconds=ban_seconds,
        auth_user_failures=refuse_after,
        trusted_networks=tuple(trust or ()),
        sip_trace=sip_trace,
        hold_timeout=hold_timeout,
        media_timeout=media_timeout,
        max_calls_per_user=max_calls_per_user,
        trunk_retry_min=trunk_retry,
    )
    # One server per data directory: say so now, before touching anything in it.
    _import("pbx.instance").DataDirLock(settings.data_dir).probe()
    result = _run(_initialize(settings, realm_given=False))
    # The realm in the database wins: every stored HA1 was made with it.
    settings = dataclasses.replace(settings, realm=result.realm)
    if result.created:
        typer.echo(f"initialized {settings.data_dir} (realm {result.realm!r})")
    if result.users == 0:
        typer.echo("no users yet; " + HINT_ADD_USER)
    server = _import("pbx.server")
    runner = _import("ivr.runner")
    voicemail = _import("ivr.voicemail")
    rooms = _import("ivr.conference")
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    if sip_trace:
        logging.getLogger("pbx.trace").setLevel(logging.INFO)  # whatever --log-level says
    # The CLI is the composition root: applications above pbx/ plug in here.
    player = voicemail.PromptPlayer(voicemail.PromptStore(settings.data_dir / "prompts"))
    mailboxes = voicemail.VoicemailApplication(settings.data_dir, player=player)

    def prepare_prompts() -> None:
        # A fresh install gets its system prompts once the server listens (a start that
        # fails says only why), without holding up the first calls.
        threading.Thread(
            target=player.prepare_defaults, name="default-prompts", daemon=True
        ).start()

    acd = _import("acd.app").AcdApplication(player)
    if not 0 <= web_port <= 65535:
        raise ConfigError(f"web port {web_port} is not between 0 and 65535")
    if web_phone_codec not in ("opus", "g711"):
        raise ConfigError(f"--web-phone-codec {web_phone_codec!r}: choose opus or g711")
    tls = _import("acd.web.tls") if web and (web_tls or web_cert or web_key) else None
    context = None
    if tls is not None:
        if (web_cert is None) != (web_key is None):
            raise ConfigError("give --web-cert and --web-key together")
        if web_cert is None or web_key is None:
            made = tls.ensure_certificate(settings.data_dir)
            _echo_certificate(made)
            web_cert, web_key = made.cert, made.key
        context = tls.server_context(web_cert, web_key)
    dialer = _import("acd.dialer").Dialer(acd, player)
    console = (
        [
            _import("acd.web.console").WebConsole(
                acd,
                web_host,
                web_port,
                ssl_context=context,
                phone_codec=web_phone_codec,
                dialer=dialer,
            )
        ]
        if web
        else []
    )
    server.run(
        settings,
        applications=[
            runner.IvrApplication(settings.data_dir, player=player),
            mailboxes,
            rooms.ConferenceApplication(player),
            acd,
            dialer,  # campaigns: after the ACD it paces on
            *console,  # a service after the ACD: it reads the ACD's state
        ],
        voicemail=mailboxes,
        on_started=prepare_prompts,
    )


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> int:
    """A --log-level value as a logging level. Raises: ConfigError for another word."""
    if text.upper() not in _LOG_LEVELS:
        raise ConfigError(f"--log-level {text!r}: choose {', '.join(_LOG_LEVELS)}")
    return int(getattr(logging, text.upper()))


async def _add_user(
    data_dir: Path, name: str, password: str, display_name: str | None
) -> tuple[str, str | None]:
    async with await _open_existing(data_dir) as store:
        realm = await store.settings.get(REALM_KEY) or Settings().realm
        user = await store.users.add(name, password, realm, display_name=display_name)
    return realm, user.display_name


def _show_generated(password: str) -> None:
    typer.echo(f"password: {password}")
    typer.echo("(shown only this once: aiopbx keeps only hashes of it)")


@user_app.command("add")
def user_add(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Username, e.g. an extension like 1001.")
    ],
    password: PasswordOption = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", "-n", help="Name shown to callees.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a user; prints a generated password once when none is given."""
    check_username(name)
    check_display_name(display_name)
    if password is not None:
        check_password(password, name)
    secret = password if password is not None else generate_password(username=name)
    realm, shown_name = _run(_add_user(_data_dir(data_dir), name, secret, display_name))
    label = f" ({shown_name})" if shown_name else ""
    typer.echo(f"added user {name}{label} in realm {realm!r}")
    if password is None:
        _show_generated(secret)


async def _list_users(data_dir: Path) -> list[tuple[str, str, str, str]]:
    async with await _open_existing(data_dir) as store:
        users = await store.users.list()
    return [
        (
            user.username,
            user.display_name or "",
            user.role,
            datetime.fromtimestamp(user.created).strftime("%Y-%m-%d %H:%M"),
        )
        for user in users
    ]


@user_app.command("list")
def user_list(data_dir: DataDirOption = None) -> None:
    """List users (never their password hashes)."""
    rows = _run(_list_users(_data_dir(data_dir)))
    if not rows:
        typer.echo("no users; " + HINT_ADD_USER)
        return
    typer.echo(format_table(("USERNAME", "DISPLAY NAME", "ROLE", "CREATED"), rows))


async def _set_role(data_dir: Path, name: str, role: str) -> None:
    async with await _open_existing(data_dir) as store:
        await store.users.set_role(name, role)


@user_app.command("role")
def user_role(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username.")],
    role: Annotated[
        str, typer.Argument(metavar="ROLE", help="agent (the default), supervisor or admin.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Give a user a role: supervisors may listen to, whisper to and barge in on agents."""
    _run(_set_role(_data_dir(data_dir), name, role))
    typer.echo(f"{name} is now {role}")


async def _set_password(data_dir: Path, name: str, password: str) -> None:
    async with await _open_existing(data_dir) as store:
        realm = await store.settings.get(REALM_KEY) or Settings().realm
        await store.users.set_password(name, password, realm)


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username.")],
    password: PasswordOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password; prints a generated one once when none is given."""
    if password is not None:
        check_password(password, name)
    secret = password if password is not None else generate_password(username=name)
    _run(_set_password(_data_dir(data_dir), name, secret))
    typer.echo(f"password of {name} changed (its web console sessions ended)")
    if password is None:
        _show_generated(secret)


async def _sessions(data_dir: Path, name: str | None) -> list[tuple[str, str, str, str]]:
    async with await _open_existing(data_dir) as store:
        if name is not None:
            await store.users.get(name)  # NotFoundError: a one-line message
        found = await store.web_sessions.list(name)
    stamp = "%Y-%m-%d %H:%M"
    return [
        (s.id, s.username, datetime.fromtimestamp(s.created).strftime(stamp),
         datetime.fromtimestamp(s.expires).strftime(stamp))
        for s in found
    ]  # fmt: skip


@user_app.command("sessions")
def user_sessions(
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="Only this user's (default: all).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the web console's live login sessions."""
    rows = _run(_sessions(_data_dir(data_dir), name))
    if not rows:
        typer.echo("no web console sessions")
        return
    typer.echo(f"{'SESSION':<18}{'USER':<12}{'SINCE':<18}EXPIRES")
    for id_, user, since, expires in rows:
        typer.echo(f"{id_:<18}{user:<12}{since:<18}{expires}")


async def _logout_user(data_dir: Path, name: str) -> int:
    async with await _open_existing(data_dir) as store:
        await store.users.get(name)
        return await store.web_sessions.revoke_user(name)


@user_app.command("logout")
def user_logout(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username.")],
    data_dir: DataDirOption = None,
) -> None:
    """End every web console session of a user (a running server closes their pages
    within seconds; `pbx user passwd` does the same)."""
    count = _run(_logout_user(_data_dir(data_dir), name))
    typer.echo(f"ended {count} web console session{'' if count == 1 else 's'} of {name}")


async def _delete_user(data_dir: Path, name: str) -> tuple[DeletedUser, list[str]]:
    """Delete the user; also say what still points at its number (IVR, forwarding, DIDs)."""
    async with await _open_existing(data_dir) as store:
        gone = await store.users.delete(name)
        dangling = ivr_references(await store.ivr.get(), name)
        dangling += [f"forwarding of {u}" for u in await store.dialplan.forwarding_to(name)]
        for kind in ("ext", "vm"):
            dangling += [f"DID {d}" for d in await store.dids.pointing_at(kind, name)]
        dangling += [
            f"overflow of ring group {g}" for g in await store.dialplan.overflowing_to(name)
        ]
    return gone, dangling


def _dispose_voicemail(data_dir: Path, gone: DeletedUser, keep: bool) -> str:
    """Delete (or with `keep` set aside) a deleted user's mailbox files; say which.

    The mailbox directory holds its messages and greetings; kept, it is renamed so that a
    new user with the same number does not inherit them.
    """
    box_dir = data_dir / "voicemail" / gone.username
    files = [Path(p) for p in gone.voicemail_files]
    count = f"{len(files)} voicemail message{'' if len(files) == 1 else 's'}"
    if not box_dir.exists() and not any(f.exists() for f in files):
        return "no voicemail to delete" if not keep else "no voicemail to keep"
    if keep:
        kept = box_dir.with_name(f"{gone.username}.deleted-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            if box_dir.exists():
                box_dir.rename(kept)
        except OSError as exc:
            raise PbxError(f"cannot keep {box_dir}: {exc.strerror or exc}") from None
        return f"kept {count} and greetings in {kept} (no longer reachable by phone)"
    for f in files:
        f.unlink(missing_ok=True)
    shutil.rmtree(box_dir, ignore_errors=True)
    return f"deleted {count} and greetings ({box_dir}); --keep-voicemail keeps them"


@user_app.command("del")
def user_del(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username.")],
    keep_voicemail: Annotated[
        bool,
        typer.Option(
            "--keep-voicemail", help="Keep the mailbox's messages as files instead of deleting."
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a user, its registrations, its ring group and queue memberships and its
    voicemail."""
    directory = _data_dir(data_dir)
    gone, dangling = _run(_delete_user(directory, name))
    typer.echo(f"deleted user {name}")
    if gone.ring_groups:
        typer.echo(f"removed {name} from ring group(s) {', '.join(gone.ring_groups)}")
    if gone.queues:
        typer.echo(f"removed agent {name} from queue(s) {', '.join(gone.queues)}")
    for group in gone.empty_ring_groups:
        typer.echo(f"ring group {group} has no members left (pbx ringgroup del {group})")
    typer.echo(_dispose_voicemail(directory, gone, keep_voicemail))
    if dangling:
        typer.echo(f"still sending calls to {name} (now unknown): {'; '.join(dangling)}")


def _registration_row(entry: Any) -> tuple[str, str, str, str, str]:
    if not isinstance(entry, dict):
        raise ControlError("the server sent a registration that is not an object")
    expires = entry.get("expires_in")
    return (
        str(entry.get("aor", "")),
        str(entry.get("contact", "")),
        str(entry.get("user_agent") or ""),
        str(max(0, round(expires))) if isinstance(expires, int | float) else "",
        str(entry.get("source", "")),
    )


@app.command()
def status(data_dir: DataDirOption = None) -> None:
    """Show the live registrations of the running server."""
    settings = Settings(data_dir=_data_dir(data_dir))
    control = _import("pbx.control")
    try:
        result: Any = control.fetch_status(settings)
        if inspect.isawaitable(result):
            result = _run(result)
    except OSError as exc:  # the control module should say ControlError; be sure anyway
        raise ControlError(f"cannot reach the server: {exc.strerror or exc}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("registrations", []), list):
        raise ControlError("the server sent a status this pbx does not understand")
    uptime = result.get("uptime")
    if isinstance(uptime, int | float):
        listening = result.get("listening")
        where = ""
        if isinstance(listening, list) and listening:
            where = ", listening on " + ", ".join(str(a) for a in listening)
        typer.echo(f"up {round(uptime)} s{where}")
    rows = [_registration_row(entry) for entry in result.get("registrations", [])]
    if not rows:
        typer.echo("no registrations")
        return
    headers = ("AOR", "CONTACT", "USER AGENT", "EXPIRES IN (S)", "SOURCE")
    typer.echo(format_table(headers, rows))


async def _forward(data_dir: Path, name: str, changes: dict[str, Any], clear: bool) -> Forwarding:
    async with await _open_existing(data_dir) as store:
        await store.users.get(name)  # NotFoundError for an unknown user
        current = Forwarding(name) if clear else await store.dialplan.forwarding(name)
        updated = dataclasses.replace(current, **changes)
        if changes or clear:
            await store.dialplan.set_forwarding(updated)
        return updated


@user_app.command("forward")
def user_forward(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username (extension).")],
    always: Annotated[
        str | None,
        typer.Option(
            help="Forward every call to this number (also voicemail, vm:BOX, trunk:NAME/NUMBER,"
            " queue:NAME)."
        ),
    ] = None,
    busy: Annotated[str | None, typer.Option(help="Forward when busy.")] = None,
    no_answer: Annotated[
        str | None, typer.Option("--no-answer", help="Forward when not answered.")
    ] = None,
    after: Annotated[
        float | None, typer.Option(help="Seconds of ringing before --no-answer applies.")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Remove all forwarding first.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Show or set call forwarding of an extension (a user or ring group number)."""
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("always", always),
            ("busy", busy),
            ("no_answer", no_answer),
            ("no_answer_seconds", after),
        )
        if v is not None
    }
    result = _run(_forward(_data_dir(data_dir), name, changes, clear))
    rows = [
        ("always", result.always or "-"),
        ("busy", result.busy or "-"),
        ("no answer", f"{result.no_answer or '-'} after {result.no_answer_seconds:g} s"),
    ]
    typer.echo(format_table(("FORWARD", f"{name} TO"), rows))


async def _record(data_dir: Path, name: str, mode: str | None) -> str:
    async with await _open_existing(data_dir) as store:
        await store.users.get(name)  # NotFoundError for an unknown user
        if mode is not None:
            await store.dialplan.set_recording_mode(name, mode)
        return await store.dialplan.recording_mode(name)


@user_app.command("record")
def user_record(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Username (extension).")],
    mode: Annotated[
        str | None,
        typer.Option(help="always: every call; on_demand: *1 on its phone starts/stops; never."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Show or set whether an extension's calls are recorded (two-channel WAV, in the CDR)."""
    typer.echo(f"{name} recording: {_run(_record(_data_dir(data_dir), name, mode))}")


OverflowOption = Annotated[
    str | None,
    typer.Option(
        help="Where the call goes when no member answers: an extension or ring group,"
        " vm:BOX, trunk:NAME/NUMBER or queue:NAME."
    ),
]

ringgroup_app = typer.Typer(
    name="ringgroup",
    help="Ring groups: one number ringing several extensions.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(ringgroup_app)


async def _ringgroup(
    data_dir: Path,
    action: str,
    group: RingGroup | None,
    number: str,
    changes: dict[str, Any] | None = None,
) -> Any:
    async with await _open_existing(data_dir) as store:
        if action == "add":
            assert group is not None
            for member in group.members:
                await store.users.get(member)  # NotFoundError for an unknown member
            await store.dialplan.add_ring_group(group)
            return None
        if action == "set":
            for member in (changes or {}).get("members", ()):
                await store.users.get(member)  # NotFoundError for an unknown member
            return await store.dialplan.update_ring_group(number, **(changes or {}))
        if action == "del":
            await store.dialplan.delete_ring_group(number)
            dangling = [
                f"overflow of ring group {g}" for g in await store.dialplan.overflowing_to(number)
            ]
            dangling += [f"forwarding of {u}" for u in await store.dialplan.forwarding_to(number)]
            dangling += [f"DID {d}" for d in await store.dids.pointing_at("group", number)]
            return dangling + ivr_references(await store.ivr.get(), number)
        return await store.dialplan.ring_groups()


@ringgroup_app.command("add")
def ringgroup_add(
    number: Annotated[str, typer.Argument(help="The group's number (not a username).")],
    member: Annotated[
        list[str],
        typer.Option("--member", "-m", help="Extension(s), in order; repeat or 1001,1002."),
    ],
    strategy: Annotated[str, typer.Option(help="all (at once) or sequential.")] = "all",
    ring_seconds: Annotated[float, typer.Option(help="How long each round rings.")] = 20.0,
    name: Annotated[str | None, typer.Option(help="A label.")] = None,
    overflow: OverflowOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a ring group."""
    check_username(number)
    group = RingGroup(number, members_of(member), strategy, ring_seconds, name, overflow)
    _run(_ringgroup(_data_dir(data_dir), "add", group, number))
    typer.echo(f"added ring group {number}: {', '.join(group.members)} ({strategy})")
    if overflow is not None:
        typer.echo(f"overflow when no member answers: {overflow}")


@ringgroup_app.command("set")
def ringgroup_set(
    number: Annotated[str, typer.Argument(help="The group's number.")],
    member: Annotated[
        list[str] | None,
        typer.Option("--member", "-m", help="New member list, in order; repeat or 1001,1002."),
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="all (at once) or sequential.")] = None,
    ring_seconds: Annotated[float | None, typer.Option(help="How long each round rings.")] = None,
    name: Annotated[str | None, typer.Option(help="A label.")] = None,
    overflow: OverflowOption = None,
    no_overflow: Annotated[
        bool, typer.Option("--no-overflow", help="Remove the overflow.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Change a ring group (only the options given)."""
    if overflow is not None and no_overflow:
        raise ConfigError("give --overflow or --no-overflow, not both")
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("members", members_of(member) if member else None),
            ("strategy", strategy),
            ("ring_seconds", ring_seconds),
            ("name", name),
            ("overflow", overflow),
        )
        if v is not None
    }
    if no_overflow:
        changes["overflow"] = None
    group: RingGroup = _run(_ringgroup(_data_dir(data_dir), "set", None, number, changes))
    typer.echo(
        f"ring group {number}: {', '.join(group.members)} ({group.strategy},"
        f" {group.ring_seconds:g} s), overflow {group.overflow or '-'}"
    )


@ringgroup_app.command("list")
def ringgroup_list(data_dir: DataDirOption = None) -> None:
    """List ring groups."""
    groups: list[RingGroup] = _run(_ringgroup(_data_dir(data_dir), "list", None, ""))
    if not groups:
        typer.echo("no ring groups")
        return
    rows = [
        (
            g.number,
            g.name or "",
            g.strategy,
            f"{g.ring_seconds:g}",
            ",".join(g.members),
            g.overflow or "-",
        )
        for g in groups
    ]
    headers = ("NUMBER", "NAME", "STRATEGY", "RING (S)", "MEMBERS", "OVERFLOW")
    typer.echo(format_table(headers, rows))


@ringgroup_app.command("del")
def ringgroup_del(
    number: Annotated[str, typer.Argument(help="The group's number.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a ring group; say what still sends calls to its number."""
    dangling: list[str] = _run(_ringgroup(_data_dir(data_dir), "del", None, number))
    typer.echo(f"deleted ring group {number}")
    if dangling:
        typer.echo(f"still sending calls to {number} (now unknown): {'; '.join(dangling)}")


@app.command()
def calls(data_dir: DataDirOption = None) -> None:
    """Show the live calls of the running server (one line per SIP leg)."""
    settings = Settings(data_dir=_data_dir(data_dir))
    control = _import("pbx.control")
    result: Any = control.fetch_calls(settings)
    rows = [
        (
            str(c.get("id", "")),
            str(c.get("direction", "")),
            str(c.get("caller", "")),
            str(c.get("callee", "")),
            str(c.get("state", "")),
            str(c.get("seconds", "")),
            str(c.get("peer", "")),
        )
        for c in result.get("calls", [])
        if isinstance(c, dict)
    ]
    if not rows:
        typer.echo("no calls")
        return
    headers = ("ID", "DIR", "CALLER", "CALLEE", "STATE", "SECONDS", "PEER")
    typer.echo(format_table(headers, rows))


@app.command()
def hangup(
    call_id: Annotated[str, typer.Argument(help="The call's ID as `pbx calls` shows it.")],
    data_dir: DataDirOption = None,
) -> None:
    """End a live call (its bridged partner is hung up too)."""
    settings = Settings(data_dir=_data_dir(data_dir))
    control = _import("pbx.control")
    control.hangup(settings, call_id)
    typer.echo(f"hung up {call_id}")


cdr_app = typer.Typer(
    name="cdr", help="Call detail records.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(cdr_app)


def _since(text: str | None) -> float | None:
    """A --since value: an ISO date/time, or a duration back from now like 90m, 2h, 7d."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ConfigError(f"--since {text!r} is neither an ISO time nor a span like 2h") from None


async def _list_cdrs(data_dir: Path, since: float | None, limit: int) -> tuple[list[Any], int]:
    async with await _open_existing(data_dir) as store:
        return list(await store.cdrs.list(since=since, limit=limit)), await store.cdrs.count(since)


@cdr_app.command("list")
def cdr_list(
    since: Annotated[
        str | None, typer.Option(help="ISO time, or a span back from now: 30m, 2h, 7d.")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    limit: Annotated[
        int, typer.Option(min=1, help="Show only the newest this many calls (like tail).")
    ] = 1000,
    data_dir: DataDirOption = None,
) -> None:
    """List call detail records, oldest first and newest last (like `tail`).

    With more calls than --limit, the newest ones are shown and a note on stderr says
    how many were left out (stdout stays valid CSV or JSON).
    """
    if output not in ("table", "csv", "json"):
        raise ConfigError(f"--format {output!r}: choose table, csv or json")
    rows, total = _run(_list_cdrs(_data_dir(data_dir), _since(since), limit))
    if total > len(rows):
        older = total - len(rows)
        typer.echo(
            f"pbx: note: showing the newest {len(rows)} of {total} calls ({older} older"
            f" one{'' if older == 1 else 's'} left out; raise --limit or use --since)",
            err=True,
        )
    fields = ("id", "call_id", "caller", "callee", "start", "answer", "end", "duration",
              "billsec", "disposition", "hangup_cause", "recording", "trunk",
              "trunk_number")  # fmt: skip
    records = [{f: getattr(r, f) for f in fields} for r in rows]
    if output == "json":
        typer.echo(json.dumps(records, indent=1))
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        typer.echo(buffer.getvalue(), nl=False)
        return
    if not records:
        typer.echo("no calls recorded")
        return

    def when(t: float | None) -> str:
        return "" if t is None else datetime.fromtimestamp(t).isoformat(" ", "seconds")

    table = [
        (
            when(r["start"]),
            str(r["caller"]),
            str(r["callee"]),
            str(r["disposition"] or "UP"),
            "" if r["duration"] is None else f"{r['duration']:.0f}",
            "" if r["billsec"] is None else f"{r['billsec']:.0f}",
            f"{r['trunk']}/{r['trunk_number']}" if r["trunk"] else "",
            str(r["hangup_cause"] or ""),
        )
        for r in records
    ]
    headers = ("START", "CALLER", "CALLEE", "DISPOSITION", "DURATION", "BILLSEC", "TRUNK", "CAUSE")
    typer.echo(format_table(headers, table))


def main() -> None:
    """Console-script entry point (`pbx`)."""
    app(prog_name="pbx")
