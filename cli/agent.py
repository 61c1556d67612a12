"""`pbx agent login|logout|pause|unpause|list|show|skill|wrapup`: ACD agents (users).

These commands write the database (`pbx.store.agents`), each state change together with
its queue event (AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE) in one transaction. They work
offline like every configuration command; the running server does not act on them yet
(the ACD application that offers queue calls comes with the next round of issue 13).
Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from cli.queue import parse_skills
from pbx.errors import ConfigError
from pbx.store import AgentRecord, QueueMember, Store

NOTE = (
    " Writes the database with its queue event; a running server does not act on it"
    " until the ACD application lands."
)

agent_app = typer.Typer(
    name="agent",
    help="ACD agents (users in queues): log in and out, pause, skills." + NOTE,
    no_args_is_help=True,
    rich_markup_mode=None,
)

AgentArg = Annotated[str, typer.Argument(metavar="AGENT", help="The agent (a user).")]
QueueOption = Annotated[
    str | None, typer.Option("--queue", "-q", help="Only this queue (default: all its queues).")
]


async def _with_store(data_dir: Path, action: Callable[[Store], Any]) -> Any:
    async with await open_existing(data_dir) as store:
        return await action(store)


@agent_app.command("login", help="Log an agent into its queues (or one)." + NOTE)
def agent_login(agent: AgentArg, queue: QueueOption = None, data_dir: DataDirOption = None) -> None:
    now = time.time()
    queues: list[str] = run(
        _with_store(data_dir_of(data_dir), lambda s: s.agents.login(agent, now, queue))
    )
    if not queues:
        typer.echo(f"{agent} is already logged in{f' to queue {queue}' if queue else ''}")
        return
    typer.echo(f"{agent} logged in to queue(s) {', '.join(queues)}")


@agent_app.command("logout", help="Log an agent out of its queues (or one)." + NOTE)
def agent_logout(
    agent: AgentArg, queue: QueueOption = None, data_dir: DataDirOption = None
) -> None:
    now = time.time()
    queues: list[str] = run(
        _with_store(data_dir_of(data_dir), lambda s: s.agents.logout(agent, now, queue))
    )
    if not queues:
        typer.echo(f"{agent} was not logged in{f' to queue {queue}' if queue else ''}")
        return
    typer.echo(f"{agent} logged out of queue(s) {', '.join(queues)}")


@agent_app.command("pause", help="Pause a logged-in agent (no offers), with a reason." + NOTE)
def agent_pause(
    agent: AgentArg,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="e.g. lunch.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    now = time.time()
    changed: bool = run(
        _with_store(data_dir_of(data_dir), lambda s: s.agents.pause(agent, now, reason))
    )
    why = f" ({reason})" if reason else ""
    typer.echo(f"{agent} paused{why}" if changed else f"{agent} is already paused{why}")


@agent_app.command("unpause", help="Make a paused agent available again." + NOTE)
def agent_unpause(agent: AgentArg, data_dir: DataDirOption = None) -> None:
    now = time.time()
    paused: float = run(_with_store(data_dir_of(data_dir), lambda s: s.agents.unpause(agent, now)))
    typer.echo(f"{agent} available (was paused {_duration(paused)})")


@agent_app.command("skill", help="Set an agent's skills (NAME=LEVEL, 1-10) or remove some.")
def agent_skill(
    agent: AgentArg,
    levels: Annotated[
        list[str] | None, typer.Argument(metavar="NAME=LEVEL...", help="Skills to set.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="A skill to remove; repeat.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    if not levels and not remove:
        raise ConfigError("give NAME=LEVEL skills to set or --remove NAME")
    skills = parse_skills(levels or [])
    record: AgentRecord = run(
        _with_store(
            data_dir_of(data_dir), lambda s: s.agents.set_skills(agent, skills, remove or [])
        )
    )
    typer.echo(f"{agent} skills: {_skills(record)}")


@agent_app.command("wrapup", help="Set an agent's wrap-up time (overrides its queues').")
def agent_wrapup(
    agent: AgentArg,
    seconds: Annotated[str, typer.Argument(metavar="SECONDS|queue", help="'queue': the queue's.")],
    data_dir: DataDirOption = None,
) -> None:
    value: float | None
    if seconds == "queue":
        value = None
    else:
        try:
            value = float(seconds)
        except ValueError:
            raise ConfigError(f"wrap-up {seconds!r}: give seconds or 'queue'") from None
    run(_with_store(data_dir_of(data_dir), lambda s: s.agents.set_wrapup(agent, value)))
    shown = "the queue's" if value is None else f"{value:g} s"
    typer.echo(f"{agent} wrap-up: {shown}")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _skills(agent: AgentRecord) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(agent.skills.items())) or "-"


def _queues(members: list[QueueMember]) -> str:
    return ",".join(f"{m.queue}({m.penalty}){'' if m.logged_in else '-'}" for m in members) or "-"


async def _listing(store: Store) -> list[tuple[AgentRecord, list[QueueMember]]]:
    return [(a, await store.queues.memberships(a.name)) for a in await store.agents.all()]


@agent_app.command("list")
def agent_list(data_dir: DataDirOption = None) -> None:
    """List agents: state, for how long, pause reason, queues (penalty; '-': logged out of
    that queue), skills."""
    now = time.time()
    agents: list[tuple[AgentRecord, list[QueueMember]]] = run(
        _with_store(data_dir_of(data_dir), _listing)
    )
    if not agents:
        typer.echo("no agents (pbx queue member add QUEUE USER)")
        return
    rows = [
        (
            a.name,
            a.state,
            _duration(now - a.state_since) if a.state_since else "-",
            a.pause_reason or "-",
            _queues(members),
            _skills(a),
        )
        for a, members in agents
    ]
    typer.echo(format_table(("AGENT", "STATE", "FOR", "REASON", "QUEUES", "SKILLS"), rows))


async def _show(store: Store, agent: str) -> tuple[AgentRecord, list[QueueMember]]:
    return await store.agents.get(agent), await store.queues.memberships(agent)


@agent_app.command("show")
def agent_show(agent: AgentArg, data_dir: DataDirOption = None) -> None:
    """Show one agent's stored state."""
    now = time.time()
    record, members = run(_with_store(data_dir_of(data_dir), lambda s: _show(s, agent)))
    since = f" for {_duration(now - record.state_since)}" if record.state_since else ""
    lines = [
        ("agent", record.name),
        ("state", f"{record.state}{since}"),
        ("pause reason", record.pause_reason or "-"),
        ("queues", _queues(members)),
        ("skills", _skills(record)),
        ("wrap-up", "queue's" if record.wrapup_seconds is None else f"{record.wrapup_seconds:g} s"),
        ("missed offers", str(record.missed_offers)),
        ("calls taken", ",".join(f"{q}={n}" for q, n in sorted(record.calls_taken.items())) or "-"),
    ]
    typer.echo("\n".join(f"{key:<14}{value}" for key, value in lines))
