"""`pbx agent login|logout|pause|unpause|list|show|skill|wrapup|report`: ACD agents (users).

When a server runs on the data directory, login, logout, pause and unpause go through
its ACD (`POST /acd/agent`): the running ACD owns the agents' live state (a database
write behind its back would be overwritten), defers a pause or logout asked during a
call, and writes the queue event itself; `list` and `show` then read its snapshot
(`GET /acd`: state, time in state, pause reason, current call). With no server they
write the database (`pbx.store.agents`), each state change together with its queue
event (AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE) in one transaction, and read it back.
`report` computes agent figures over a period from the queue log (offline).
Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from acd.stats import AgentStats, agent_stats
from cli import reports
from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from cli.queue import FormatOption, SinceOption, UntilOption, parse_skills
from pbx.config import Settings
from pbx.errors import ConfigError
from pbx.store import AgentRecord, QueueMember, Store

NOTE = (
    " Goes through the running server's ACD when one runs, else writes the database"
    " with its queue event."
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


def _live(
    data_dir: Path | None,
    agent: str,
    action: str,
    *,
    reason: str | None = None,
    queue: str | None = None,
) -> bool:
    """With a server running: ask its ACD for the change and print the outcome (True);
    with none: False (the caller writes the database).

    Raises: ControlError (the ACD's refusal, one line).
    """
    settings = Settings(data_dir=data_dir_of(data_dir))
    if not reports.server_running(settings):
        return False
    answer = reports.agent_command(settings, agent, action, reason=reason, queue=queue)
    typer.echo(live_line(action, answer))
    return True


_DONE = {"login": "logged in", "logout": "logged out", "pause": "paused", "unpause": "unpaused"}


def live_line(action: str, answer: dict[str, Any]) -> str:
    """One line for the running ACD's answer to an agent command: what was asked and the
    state the agent is in now (a pause or logout during a call waits for its end)."""
    state = str(answer.get("state") or "-")
    reason = answer.get("reason")
    queues = [str(q) for q in answer.get("queues") or []]
    line = f"{answer.get('agent', '?')} {_DONE.get(action, action)}: now {state}"
    if reason:
        line += f" ({reason})"
    if queues:
        line += f", queue(s) {', '.join(queues)}"
    return line


async def _with_store(data_dir: Path, action: Callable[[Store], Any]) -> Any:
    async with await open_existing(data_dir) as store:
        return await action(store)


@agent_app.command("login", help="Log an agent into its queues (or one)." + NOTE)
def agent_login(agent: AgentArg, queue: QueueOption = None, data_dir: DataDirOption = None) -> None:
    if _live(data_dir, agent, "login", queue=queue):
        return
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
    if _live(data_dir, agent, "logout", queue=queue):
        return
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
    if _live(data_dir, agent, "pause", reason=reason):
        return
    now = time.time()
    changed: bool = run(
        _with_store(data_dir_of(data_dir), lambda s: s.agents.pause(agent, now, reason))
    )
    why = f" ({reason})" if reason else ""
    typer.echo(f"{agent} paused{why}" if changed else f"{agent} is already paused{why}")


@agent_app.command("unpause", help="Make a paused agent available again." + NOTE)
def agent_unpause(agent: AgentArg, data_dir: DataDirOption = None) -> None:
    if _live(data_dir, agent, "unpause"):
        return
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


class _Live:
    """What the running ACD says of the agents (empty with no server running)."""

    def __init__(self, data_dir: Path) -> None:
        settings = Settings(data_dir=data_dir)
        self.live = reports.server_running(settings)
        snapshot = reports.live_snapshot(settings) if self.live else {}
        agents = snapshot.get("agents")
        self.agents: dict[str, dict[str, Any]] = {
            str(a.get("name")): a for a in agents or [] if isinstance(a, dict)
        }
        now = snapshot.get("now")
        self.now = float(now) if isinstance(now, int | float) else time.time()

    def state(self, record: AgentRecord) -> tuple[str, str, str, str]:
        """(state, for how long, pause reason, current call): the live ACD's when it
        runs, else the stored row's."""
        found = self.agents.get(record.name)
        if found is None:
            stored = record.state_since
            return record.state, self._for(stored), record.pause_reason or "-", "-"
        since = found.get("since")
        return (
            str(found.get("state") or "-"),
            self._for(since if isinstance(since, int | float) else None),
            str(found.get("reason") or "-"),
            str(found.get("call") or "-"),
        )

    def _for(self, since: float | None) -> str:
        return _duration(self.now - since) if since else "-"


@agent_app.command("list")
def agent_list(data_dir: DataDirOption = None) -> None:
    """List agents: state, for how long, pause reason, queues (penalty; '-': logged out of
    that queue), skills; with a server running the live state and the current call."""
    directory = data_dir_of(data_dir)
    agents: list[tuple[AgentRecord, list[QueueMember]]] = run(_with_store(directory, _listing))
    if not agents:
        typer.echo("no agents (pbx queue member add QUEUE USER)")
        return
    live = _Live(directory)
    rows = []
    for a, members in agents:
        state, spent, reason, call = live.state(a)
        extra = [call] if live.live else []
        rows.append((a.name, state, spent, reason, *extra, _queues(members), _skills(a)))
    headers = ("AGENT", "STATE", "FOR", "REASON", *(["CALL"] if live.live else []), "QUEUES")
    typer.echo(format_table((*headers, "SKILLS"), rows))


async def _show(store: Store, agent: str) -> tuple[AgentRecord, list[QueueMember]]:
    return await store.agents.get(agent), await store.queues.memberships(agent)


@agent_app.command("show")
def agent_show(agent: AgentArg, data_dir: DataDirOption = None) -> None:
    """Show one agent: its live state with a server running (else the stored one)."""
    directory = data_dir_of(data_dir)
    record, members = run(_with_store(directory, lambda s: _show(s, agent)))
    live = _Live(directory)
    state, spent, reason, call = live.state(record)
    lines = [
        ("agent", record.name),
        ("state", state if spent == "-" else f"{state} for {spent}"),
        ("pause reason", reason),
        *([("call", call)] if live.live else []),
        ("queues", _queues(members)),
        ("skills", _skills(record)),
        ("wrap-up", "queue's" if record.wrapup_seconds is None else f"{record.wrapup_seconds:g} s"),
        ("missed offers", str(record.missed_offers)),
        ("calls taken", ",".join(f"{q}={n}" for q, n in sorted(record.calls_taken.items())) or "-"),
    ]
    typer.echo("\n".join(f"{key:<14}{value}" for key, value in lines))


AGENT_COLUMNS = (
    "agent", "answered", "completed", "ring_no_answer", "talk", "wrapup", "paused",
    "logged", "occupancy", "pauses",
)  # fmt: skip


async def _agent_report(
    data_dir: Path, since: float, until: float, agent: str | None
) -> list[AgentStats]:
    history = await reports.load_history(data_dir, since, until, reports.AGENT_HORIZON)
    if agent is not None and agent not in reports.known_names(history, "agent"):
        await reports.require_agent(data_dir, agent)  # a user with no events: no rows
    stats = agent_stats(history.events, since, until)
    return [s for name, s in stats.items() if agent in (None, name)]


@agent_app.command("report")
def agent_report(
    agent: Annotated[str | None, typer.Argument(metavar="[AGENT]", help="Only this agent.")] = None,
    since: SinceOption = "today",
    until: UntilOption = None,
    fmt: FormatOption = "table",
    data_dir: DataDirOption = None,
) -> None:
    """Agent figures over a period from the queue log: calls answered and completed,
    ring-no-answers, talk, wrap-up, paused (by reason) and logged-in time in seconds,
    occupancy ((talk + wrap-up) / (logged - paused)). Offline."""
    reports.check_format(fmt)
    start, end = reports.period(since, until)
    rows = run(_agent_report(data_dir_of(data_dir), start, end, agent))
    if fmt == "table" and not rows:
        typer.echo("no agent activity in the period")
        return
    typer.echo(reports.render(rows, fmt, AGENT_COLUMNS, AgentStats))
