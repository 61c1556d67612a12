"""`pbx agent spy|whisper|barge AGENT --from EXT`: a supervisor joins an agent's live
queue call from their own phone (acd.supervisor); `pbx agent escalate AGENT --queue Q
--skill S --level L --note TEXT` hands an agent's queue call to a specialist queue or
skill (the caller keeps its place; the specialist's offer carries the note); `pbx agent
transfer AGENT TARGET` sends it outside the queues (an extension, vm:BOX, a trunk).

Live commands: they ask the running server (`POST /acd/supervise`), which rings EXT
and, once answered, joins it to the agent's call: `spy` listens (nobody hears the
supervisor), `whisper` talks to the agent only, `barge` makes it a three-way call.
While in, keys 4, 5 and 6 switch between listen, whisper and barge. EXT must be a user
with the supervisor (or admin) role (`pbx user role NAME supervisor`). Errors (no
server running, no such agent, not a supervisor, the agent not on a queue call, the
phone not answering) end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of
from pbx.config import Settings

#: Seconds the command waits for the server: the supervisor's phone rings up to 30 s.
WAIT = 45.0

_AgentArg = Annotated[str, typer.Argument(metavar="AGENT", help="The agent (a user) on a call.")]
_FromOption = Annotated[
    str,
    typer.Option(
        "--from", "-f", metavar="EXT", help="The supervisor's extension: its phone rings."
    ),
]


def _supervise(agent: str, mode: str, from_ext: str, data_dir: DataDirOption) -> None:
    from pbx import control

    settings = Settings(data_dir=data_dir_of(data_dir))
    body = {"agent": agent, "mode": mode, "from": from_ext}
    result = control.request(settings, "/acd/supervise", WAIT, method="POST", body=body)
    typer.echo(f"{from_ext} {_DONE[mode]} {agent}'s call ({result.get('call_id', '?')})")


def _escalate(
    agent: str,
    queue: str | None,
    skill: str | None,
    level: int | None,
    note: str | None,
    data_dir: DataDirOption,
) -> None:
    from pbx import control

    settings = Settings(data_dir=data_dir_of(data_dir))
    body = {"agent": agent, "queue": queue, "skill": skill, "level": level, "note": note}
    result = control.request(settings, "/acd/escalate", 10.0, method="POST", body=body)
    skills = ", ".join(f"{k}={v}" for k, v in sorted(result.get("skills", {}).items()))
    line = f"{agent}'s call {result.get('call_id', '?')} waits in queue {result.get('queue')}"
    typer.echo(line + (f" for {skills}" if skills else ""))


_DONE = {"listen": "listens to", "whisper": "whispers to", "barge": "barged in on"}


def add_supervise_commands(agent_app: typer.Typer) -> None:
    """Register `spy`, `whisper` and `barge` on the `pbx agent` group."""

    @agent_app.command("spy", help="Listen to an agent's queue call from EXT (not heard).")
    def agent_spy(agent: _AgentArg, from_ext: _FromOption, data_dir: DataDirOption = None) -> None:
        _supervise(agent, "listen", from_ext, data_dir)

    @agent_app.command(
        "whisper", help="Talk to an agent on a queue call from EXT (only the agent hears)."
    )
    def agent_whisper(
        agent: _AgentArg, from_ext: _FromOption, data_dir: DataDirOption = None
    ) -> None:
        _supervise(agent, "whisper", from_ext, data_dir)

    @agent_app.command("barge", help="Join an agent's queue call from EXT (three-way).")
    def agent_barge(
        agent: _AgentArg, from_ext: _FromOption, data_dir: DataDirOption = None
    ) -> None:
        _supervise(agent, "barge", from_ext, data_dir)

    @agent_app.command(
        "escalate",
        help="Hand an agent's queue call to a specialist queue and/or skill, with a note.",
    )
    def agent_escalate(
        agent: _AgentArg,
        queue: Annotated[
            str | None, typer.Option("--queue", "-q", help="The specialist queue.")
        ] = None,
        skill: Annotated[
            str | None, typer.Option("--skill", "-s", help="A skill the call now requires.")
        ] = None,
        level: Annotated[
            int | None, typer.Option("--level", "-l", help="Its minimum level, 1-10 (1).")
        ] = None,
        note: Annotated[
            str | None, typer.Option("--note", "-n", help="Shown to the specialist.")
        ] = None,
        data_dir: DataDirOption = None,
    ) -> None:
        _escalate(agent, queue, skill, level, note, data_dir)

    @agent_app.command(
        "transfer",
        help="Hand an agent's queue call to TARGET: an extension or number, vm:BOX, trunk:N/NUM.",
    )
    def agent_transfer(
        agent: _AgentArg,
        target: Annotated[str, typer.Argument(metavar="TARGET", help="Where the caller goes.")],
        data_dir: DataDirOption = None,
    ) -> None:
        from pbx import control

        settings = Settings(data_dir=data_dir_of(data_dir))
        body = {"agent": agent, "target": target}
        result = control.request(settings, "/acd/transfer", 10.0, method="POST", body=body)
        typer.echo(f"{agent}'s call {result.get('call_id', '?')} transferred to {target}")
