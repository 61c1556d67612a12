"""`pbx agent spy|whisper|barge AGENT --from EXT`: a supervisor joins an agent's live
queue call from their own phone (acd.supervisor).

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
