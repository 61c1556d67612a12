"""`pbx queue add|set|list|del`, `pbx queue member add|set|del|list`: ACD queues;
`pbx queue show [NAME]` (live wallboard) and `pbx queue report` (figures over a period).

The configuration lives in the database (`pbx.store.queues`); a queue's number is in the
numbering plan, and DIDs, IVR actions, ring-group overflow and forwarding reach it as
`queue:NAME`. Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from acd.stats import QueueStats, queue_stats
from cli import reports
from cli.common import DataDirOption, data_dir_of, format_table, open_existing, run
from cli.ivr import references as ivr_references
from pbx.errors import ConfigError
from pbx.store import DeletedQueue, Queue, QueueMember
from pbx.store.queues import CONDITIONS, STRATEGIES, SkillRule

queue_app = typer.Typer(
    name="queue",
    help="ACD queues: their settings and their member agents.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
member_app = typer.Typer(
    name="member",
    help="The agents (users) of a queue, each with a penalty.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
queue_app.add_typer(member_app)

_LEVEL = re.compile(r"([^=]+)=(-?\d+)")
_RELAX = re.compile(r"(\d+(?:\.\d+)?):(?:-(\d+)|(drop))")


def parse_skills(texts: Sequence[str]) -> dict[str, int]:
    """NAME=LEVEL texts (also comma-separated) as a mapping.

    Raises: ConfigError for a text that is not NAME=LEVEL.
    """
    skills: dict[str, int] = {}
    for text in texts:
        for piece in text.split(","):
            match = _LEVEL.fullmatch(piece.strip())
            if match is None:
                raise ConfigError(f"skill {piece.strip()!r}: give NAME=LEVEL (level 1 to 10)")
            skills[match.group(1)] = int(match.group(2))
    return skills


def parse_rules(texts: Sequence[str]) -> tuple[SkillRule, ...]:
    """AFTER:-N / AFTER:drop texts as relax rules, in order of their wait.

    Raises: ConfigError for any other text.
    """
    rules = []
    for text in texts:
        match = _RELAX.fullmatch(text.strip())
        if match is None:
            raise ConfigError(
                f"relax rule {text!r}: give SECONDS:-N (levels drop by N) or SECONDS:drop"
            )
        after = float(match.group(1))
        if match.group(3):
            rules.append(SkillRule(after, drop=True))
        else:
            rules.append(SkillRule(after, relax=int(match.group(2))))
    return tuple(sorted(rules, key=lambda r: r.after))


def parse_conditions(text: str) -> frozenset[str]:
    """A comma-separated list of condition names ("" or "none": none)."""
    if text.strip().lower() in ("", "none"):
        return frozenset()
    return frozenset(piece.strip() for piece in text.split(",") if piece.strip())


def _key(text: str) -> str | None:
    return None if text.lower() == "none" else text


Strategy = Annotated[
    str | None, typer.Option("--strategy", help=f"One of {', '.join(STRATEGIES)}.")
]
RingSeconds = Annotated[
    float | None, typer.Option("--ring-seconds", help="How long one offer rings an agent.")
]
RetrySeconds = Annotated[
    float | None, typer.Option("--retry-seconds", help="Pause before the next offer.")
]
WrapupSeconds = Annotated[
    float | None,
    typer.Option("--wrapup-seconds", help="Wrap-up time after a call (an agent's overrides)."),
]
MaxCallers = Annotated[int | None, typer.Option("--max-callers", help="0: unlimited.")]
MaxWait = Annotated[
    float | None, typer.Option("--max-wait", help="Seconds before the overflow (0: none).")
]
Overflow = Annotated[
    str | None,
    typer.Option(
        "--overflow",
        help="After the max wait: queue:NAME, vm:BOX, a number (extension, group, IVR"
        " menu, room, queue) or trunk:NAME/NUMBER.",
    ),
]
JoinEmpty = Annotated[
    str | None,
    typer.Option(
        "--join-empty",
        help=f"Conditions that refuse callers (comma list of {', '.join(CONDITIONS)}; none).",
    ),
]
LeaveEmpty = Annotated[
    str | None,
    typer.Option("--leave-when-empty", help="Conditions that make callers leave (as above)."),
]
ServiceLevel = Annotated[
    float | None, typer.Option("--service-level", help="Service-level threshold in seconds.")
]
AnnounceFrequency = Annotated[
    float | None,
    typer.Option("--announce-frequency", help="Position/wait announcements every S (0: off)."),
]
PeriodicAnnounce = Annotated[
    str | None, typer.Option("--periodic-announce", help="Prompt played periodically.")
]
PeriodicFrequency = Annotated[
    float | None, typer.Option("--periodic-frequency", help="Every S seconds (0: off).")
]
Music = Annotated[str | None, typer.Option("--music", help="Music-on-hold class.")]
Weight = Annotated[
    int | None, typer.Option("--weight", help="Higher wins an agent shared by queues.")
]
PenaltyLimit = Annotated[
    int | None,
    typer.Option(
        "--penalty-members-limit", help="Penalties ignored with this many members or fewer."
    ),
]
RingInUse = Annotated[
    bool | None,
    typer.Option("--ring-in-use/--no-ring-in-use", help="Offer agents busy on a non-queue call."),
]
Autopause = Annotated[
    int | None,
    typer.Option("--autopause-after", help="Pause an agent after N missed offers (0: off)."),
]
Skill = Annotated[
    list[str] | None,
    typer.Option("--skill", help="Required skill NAME=LEVEL (1-10); repeat."),
]
Relax = Annotated[
    list[str] | None,
    typer.Option("--relax", help="After S seconds lower levels: S:-N, or drop them: S:drop."),
]
CallbackKey = Annotated[
    str | None, typer.Option("--callback-key", help="Key for 'call me back' (none: off).")
]
VoicemailKey = Annotated[
    str | None, typer.Option("--voicemail-key", help="Key to leave a message (none: off).")
]
CallbackAttempts = Annotated[
    int | None, typer.Option("--callback-attempts", help="Tries before a callback is dropped.")
]


def _changes(**options: Any) -> dict[str, Any]:
    """The Queue fields the options give (None: not given)."""
    out: dict[str, Any] = {}
    renames = {"max_wait": "max_wait_seconds", "service_level": "service_level_seconds"}
    for name, value in options.items():
        if value is None:
            continue
        if name in ("join_empty", "leave_when_empty"):
            value = parse_conditions(value)
        elif name == "skill":
            name, value = "skills", parse_skills(value)
        elif name == "relax":
            name, value = "skill_rules", parse_rules(value)
        elif name in ("callback_key", "voicemail_key"):
            value = _key(value)
        out[renames.get(name, name)] = value
    return out


async def _add(data_dir: Path, queue: Queue) -> Queue:
    async with await open_existing(data_dir) as store:
        return await store.queues.add(queue)


async def _update(data_dir: Path, name: str, changes: dict[str, Any]) -> Queue:
    async with await open_existing(data_dir) as store:
        return await store.queues.update(name, **changes)


async def _all(data_dir: Path) -> tuple[list[Queue], dict[str, list[QueueMember]]]:
    async with await open_existing(data_dir) as store:
        return await store.queues.all(), await store.queues.all_members()


async def _delete(data_dir: Path, name: str) -> tuple[DeletedQueue, list[str]]:
    async with await open_existing(data_dir) as store:
        gone = await store.queues.delete(name)
        return gone, ivr_references(await store.ivr.get(), gone.number)


def _describe(queue: Queue) -> str:
    return (
        f"queue {queue.name} ({queue.number}): {queue.strategy}, ring {queue.ring_seconds:g} s,"
        f" overflow {queue.overflow or '-'}"
    )


@queue_app.command("add")
def queue_add(
    name: Annotated[str, typer.Argument(help="The queue's name (used as queue:NAME).")],
    number: Annotated[str, typer.Option("--number", help="Its number in the numbering plan.")],
    strategy: Strategy = None,
    ring_seconds: RingSeconds = None,
    retry_seconds: RetrySeconds = None,
    wrapup_seconds: WrapupSeconds = None,
    max_callers: MaxCallers = None,
    max_wait: MaxWait = None,
    overflow: Overflow = None,
    join_empty: JoinEmpty = None,
    leave_when_empty: LeaveEmpty = None,
    service_level: ServiceLevel = None,
    announce_frequency: AnnounceFrequency = None,
    periodic_announce: PeriodicAnnounce = None,
    periodic_frequency: PeriodicFrequency = None,
    music: Music = None,
    weight: Weight = None,
    penalty_members_limit: PenaltyLimit = None,
    ring_in_use: RingInUse = None,
    autopause_after: Autopause = None,
    skill: Skill = None,
    relax: Relax = None,
    callback_key: CallbackKey = None,
    voicemail_key: VoicemailKey = None,
    callback_attempts: CallbackAttempts = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a queue (defaults: ringall, 15 s rings, callback key 1)."""
    options = {k: v for k, v in locals().items() if k not in ("name", "number", "data_dir")}
    changes = _changes(**options)
    queue = run(_add(data_dir_of(data_dir), Queue(name, number, **changes)))
    typer.echo(f"added {_describe(queue)}")


@queue_app.command("set")
def queue_set(
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    number: Annotated[str | None, typer.Option("--number", help="A new number.")] = None,
    strategy: Strategy = None,
    ring_seconds: RingSeconds = None,
    retry_seconds: RetrySeconds = None,
    wrapup_seconds: WrapupSeconds = None,
    max_callers: MaxCallers = None,
    max_wait: MaxWait = None,
    overflow: Overflow = None,
    no_overflow: Annotated[
        bool, typer.Option("--no-overflow", help="Remove the overflow.")
    ] = False,
    join_empty: JoinEmpty = None,
    leave_when_empty: LeaveEmpty = None,
    service_level: ServiceLevel = None,
    announce_frequency: AnnounceFrequency = None,
    periodic_announce: PeriodicAnnounce = None,
    periodic_frequency: PeriodicFrequency = None,
    music: Music = None,
    weight: Weight = None,
    penalty_members_limit: PenaltyLimit = None,
    ring_in_use: RingInUse = None,
    autopause_after: Autopause = None,
    skill: Skill = None,
    relax: Relax = None,
    callback_key: CallbackKey = None,
    voicemail_key: VoicemailKey = None,
    callback_attempts: CallbackAttempts = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a queue (only the options given; --skill and --relax replace the lists)."""
    if overflow is not None and no_overflow:
        raise ConfigError("give --overflow or --no-overflow, not both")
    options = {k: v for k, v in locals().items() if k not in ("name", "data_dir", "no_overflow")}
    changes = _changes(**options)
    if no_overflow:
        changes["overflow"] = None
    queue = run(_update(data_dir_of(data_dir), name, changes))
    typer.echo(_describe(queue))


def _short(value: float) -> str:
    return f"{value:g}"


@queue_app.command("list")
def queue_list(data_dir: DataDirOption = None) -> None:
    """List the queues with their main settings and members."""
    queues, members = run(_all(data_dir_of(data_dir)))
    if not queues:
        typer.echo("no queues")
        return
    rows = [
        (
            q.name,
            q.number,
            q.strategy,
            _short(q.ring_seconds),
            _short(q.wrapup_seconds),
            str(q.max_callers or "-"),
            f"{_short(q.max_wait_seconds)}>{q.overflow}" if q.max_wait_seconds else "-",
            ",".join(f"{k}={v}" for k, v in sorted(q.skills.items())) or "-",
            ",".join(m.agent for m in members.get(q.name, [])) or "-",
        )
        for q in queues
    ]
    headers = (
        "NAME",
        "NUMBER",
        "STRATEGY",
        "RING",
        "WRAPUP",
        "MAX",
        "MAXWAIT>OVERFLOW",
        "SKILLS",
        "MEMBERS",
    )
    typer.echo(format_table(headers, rows))


@queue_app.command("del")
def queue_del(
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a queue, its memberships and pending callbacks (its history stays); say what
    still sends calls to it."""
    gone, ivr = run(_delete(data_dir_of(data_dir), name))
    typer.echo(f"deleted queue {name} ({gone.number})")
    if gone.members:
        typer.echo(f"removed its member(s) {', '.join(gone.members)}")
    if gone.pending_callbacks:
        typer.echo(f"dropped {gone.pending_callbacks} pending callback(s)")
    dangling = [*gone.references, *ivr]
    if dangling:
        typer.echo(f"still sending calls to queue {name} (now unknown): {'; '.join(dangling)}")


# --- members -------------------------------------------------------------------------


async def _member(
    data_dir: Path, action: str, queue: str, agent: str, penalty: int | None = None
) -> Any:
    async with await open_existing(data_dir) as store:
        if action == "add":
            return await store.queues.add_member(queue, agent, penalty or 0)
        if action == "set":
            return await store.queues.update_member(queue, agent, penalty=penalty)
        if action == "del":
            return await store.queues.delete_member(queue, agent)
        return await store.queues.members(queue)


Penalty = Annotated[int | None, typer.Option("--penalty", help="0 (first) or more.")]


@member_app.command("add")
def member_add(
    queue: Annotated[str, typer.Argument(help="The queue's name.")],
    agent: Annotated[str, typer.Argument(help="A user.")],
    penalty: Penalty = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make a user an agent of the queue (after its other members)."""
    member: QueueMember = run(_member(data_dir_of(data_dir), "add", queue, agent, penalty))
    typer.echo(f"added {agent} to queue {queue} (penalty {member.penalty})")


@member_app.command("set")
def member_set(
    queue: Annotated[str, typer.Argument(help="The queue's name.")],
    agent: Annotated[str, typer.Argument(help="A member.")],
    penalty: Penalty = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a member's penalty."""
    member: QueueMember = run(_member(data_dir_of(data_dir), "set", queue, agent, penalty))
    typer.echo(f"{agent} in queue {queue}: penalty {member.penalty}")


@member_app.command("del")
def member_del(
    queue: Annotated[str, typer.Argument(help="The queue's name.")],
    agent: Annotated[str, typer.Argument(help="A member.")],
    data_dir: DataDirOption = None,
) -> None:
    """Remove an agent from the queue."""
    run(_member(data_dir_of(data_dir), "del", queue, agent))
    typer.echo(f"removed {agent} from queue {queue}")


@member_app.command("list")
def member_list(
    queue: Annotated[str, typer.Argument(help="The queue's name.")],
    data_dir: DataDirOption = None,
) -> None:
    """List a queue's members in order."""
    members: list[QueueMember] = run(_member(data_dir_of(data_dir), "list", queue, ""))
    if not members:
        typer.echo(f"queue {queue} has no members")
        return
    rows = [
        (m.agent, str(m.penalty), str(m.position), "yes" if m.logged_in else "no") for m in members
    ]
    typer.echo(format_table(("AGENT", "PENALTY", "POSITION", "ACTIVE"), rows))


# --- live wallboard and reports ---------------------------------------------------------

SinceOption = Annotated[
    str,
    typer.Option("--since", help="Start: 8h, 7d (before now), today, 2026-12-01[T08:00]."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="End, same forms as --since [default: now].")
]
FormatOption = Annotated[str, typer.Option("--format", help="table, csv or json.")]
QUEUE_COLUMNS = (
    "queue", "offered", "answered", "abandoned", "abandoned_within", "waiting", "sl", "sl2",
    "asa", "aht", "longest_wait",
)  # fmt: skip


@queue_app.command("show")
def queue_show(
    name: Annotated[str | None, typer.Argument(help="Only this queue.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """A live wallboard refreshing every second: waiting callers, longest wait, agents by
    state with time in state and pause reason, today's figures (offered, answered,
    abandoned, SL, ASA, AHT). Without a running server: agents from the database."""
    board = reports.Wallboard(data_dir_of(data_dir), name)
    if once:
        typer.echo("\n".join(board.lines()))
        return
    from rich.console import Console
    from rich.live import Live

    with Live(board.renderable(), console=Console(), auto_refresh=False) as live:
        try:
            while True:  # until Ctrl-C
                time.sleep(1.0)
                live.update(board.renderable(), refresh=True)
        except KeyboardInterrupt:
            pass


async def _queue_report(
    data_dir: Path, since: float, until: float, name: str | None
) -> list[QueueStats]:
    history = await reports.load_history(data_dir, since, until)
    if name is not None and name not in reports.known_names(history, "queue"):
        raise ConfigError(f"no queue {name!r} (and no events of one)")
    stats = queue_stats(history.events, since, until, history.thresholds)
    return [s for q, s in stats.items() if name in (None, q)]


async def _dispositions(
    data_dir: Path, since: float, until: float, name: str | None
) -> list[tuple[str, str, str, str]]:
    """Per queue and code: the calls given that disposition in the period (agents'
    dispositions from the web console) and the distinct tickets they name."""
    async with await open_existing(data_dir) as store:
        found = await store.dispositions.between(since, until)
    calls: dict[tuple[str, str], set[str]] = {}
    tickets: dict[tuple[str, str], set[int]] = {}
    for d in found:
        if name not in (None, d.queue):
            continue
        key = (d.queue or "-", d.code)
        calls.setdefault(key, set()).add(d.call_id)
        if d.ticket is not None:
            tickets.setdefault(key, set()).add(d.ticket)
    return [
        (queue, code, str(len(ids)), str(len(tickets.get((queue, code), ()))))
        for (queue, code), ids in sorted(calls.items())
    ]


@queue_app.command("report")
def queue_report(
    name: Annotated[str | None, typer.Argument(help="Only this queue.")] = None,
    since: SinceOption = "today",
    until: UntilOption = None,
    fmt: FormatOption = "table",
    data_dir: DataDirOption = None,
) -> None:
    """Queue figures over a period from the queue log: offered, answered, abandoned (and
    within the SL threshold), SL, SL2, ASA, AHT, longest wait. Offline."""
    reports.check_format(fmt)
    start, end = reports.period(since, until)
    rows = run(_queue_report(data_dir_of(data_dir), start, end, name))
    if fmt == "table" and not rows:
        typer.echo("no queue calls in the period")
        return
    typer.echo(reports.render(rows, fmt, QUEUE_COLUMNS, QueueStats))
    if fmt == "table":
        outcomes = run(_dispositions(data_dir_of(data_dir), start, end, name))
        if outcomes:
            typer.echo("\nDISPOSITIONS")
            typer.echo(format_table(("QUEUE", "CODE", "CALLS", "TICKETS"), outcomes))
