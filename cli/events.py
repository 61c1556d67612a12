"""`pbx events`: the running server's events, live, one line each (the CTI feed).

Reads `GET /events` of the control API (a WebSocket) until Ctrl-C or until the server
stops. Plain lines are `TIME KIND CALL-ID key=value …` (the time is local, to the
millisecond); `--json` prints each event as the server sent it, one JSON object a
line, for scripts. `--count N` stops after N events. Errors (server not running, this
listener dropped for reading too slowly) end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.common import DataDirOption, data_dir_of, run
from pbx import control
from pbx.config import Settings

_SHOWN_FIRST = ("kind", "call_id", "at")


def event_line(event: dict[str, Any]) -> str:
    """One event as a line for people: time, kind, call id (or AOR), then the rest."""
    at = event.get("at")
    when = (
        datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(at, int | float)
        else "--:--:--.---"
    )
    who = str(event.get("call_id") or event.get("aor") or "-")
    rest = " ".join(
        f"{k}={json.dumps(v) if isinstance(v, str) and (not v or ' ' in v) else v}"
        for k, v in event.items()
        if k not in _SHOWN_FIRST and not (k == "aor" and who == v)
    )
    return f"{when}  {event.get('kind', '?')!s:<18} {who:<12} {rest}".rstrip()


async def _follow(settings: Settings, as_json: bool, count: int | None) -> None:
    seen = 0
    async for event in control.stream_events(settings):
        typer.echo(json.dumps(event) if as_json else event_line(event))
        seen += 1
        if count is not None and seen >= count:
            return
    typer.echo("pbx: the server closed the event stream", err=True)


def events(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line, as the server sends it.")
    ] = False,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many events.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Show the running server's events live (calls, registrations) until Ctrl-C."""
    settings = Settings(data_dir=data_dir_of(data_dir))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops watching
        run(_follow(settings, as_json, count))
