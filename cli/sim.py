"""`pbx sim pstn`: run the PSTN simulator, a SIP provider on loopback (pbx.sim).

Point a trunk at it to test a setup without a real provider: it registers accounts
with digest, and each called number behaves as the script says (live person, answering
machine, busy, no answer, invalid, congestion, slow answer). It writes a WAV of what
it heard on each answered call and one JSON line per attempt into --out. It runs until
interrupted (Ctrl-C or SIGTERM); with --call it also places calls (a switch's DIDs,
at --rate a second) and exits when they are over. Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from pbx.errors import ConfigError
from pbx.sim.caller import CallPlan, place_calls
from pbx.sim.script import load_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice

sim_app = typer.Typer(
    name="sim",
    help="Simulators for testing a setup (a PSTN provider).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _target(text: str) -> tuple[str, int]:
    """`--call HOST:PORT` as an address (a name is resolved here, before the loop runs).

    Raises: ConfigError for a bad port or a name that does not resolve.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
        raise ConfigError(f"--call {text!r}: give HOST:PORT")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--call {text}: cannot resolve {host}: {exc}") from None
    return str(infos[0][4][0]), int(port_text)


async def _serve(simulator: PstnSimulator, plan: CallPlan | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await simulator.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {simulator.host}:{simulator.port}: {exc.strerror or exc}"
        ) from None
    try:
        typer.echo(f"PSTN simulator listening on {simulator.host}:{port} (UDP and TCP)")
        typer.echo(f"attempts: {simulator.attempts_log}")
        if plan is None:
            await stop.wait()
            return
        calls = asyncio.ensure_future(place_calls(simulator, plan))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({calls, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not calls.done():
                calls.cancel()
            await asyncio.gather(calls, stopped, return_exceptions=True)
        if calls.cancelled():
            typer.echo("interrupted")
            return
        for outcome in calls.result():
            typer.echo(f"{outcome.number}: {outcome.status} {outcome.ended_by or ''}".rstrip())
    finally:
        await simulator.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


@sim_app.command("pstn")
def sim_pstn(
    script: Annotated[Path, typer.Option("--script", help="The behaviour script (TOML).")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="SIP port (0: any).")] = 5080,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback).")] = "127.0.0.1",
    out: Annotated[
        Path, typer.Option(help="Directory for the call WAVs and attempts.jsonl.")
    ] = Path("pstn-sim"),
    tones: Annotated[
        bool, typer.Option("--tones", help="Greet with tone patterns, not espeak-ng speech.")
    ] = False,
    call: Annotated[
        str | None,
        typer.Option(help="Also place calls to HOST:PORT (a switch's DIDs), then exit."),
    ] = None,
    number: Annotated[
        list[str] | None, typer.Option("--number", help="Number(s) to call in turn (--call).")
    ] = None,
    calls: Annotated[int, typer.Option(min=1, max=10000, help="How many calls.")] = 1,
    rate: Annotated[float, typer.Option(min=0.01, max=100, help="Calls a second.")] = 1.0,
    talk: Annotated[float, typer.Option(min=0, max=3600, help="Seconds to stay up.")] = 5.0,
    call_user: Annotated[
        str | None, typer.Option("--call-user", help="Account for the far end's challenge.")
    ] = None,
    call_password: Annotated[
        str | None, typer.Option("--call-password", help="Its password.")
    ] = None,
    max_calls: Annotated[
        int, typer.Option("--max-calls", min=1, max=5000, help="Calls at once (503 beyond).")
    ] = 64,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every attempt.")] = False,
) -> None:
    """Run a simulated SIP provider (registrar + called numbers) until interrupted; with
    --call, also place calls (at --rate a second) and exit when they are over."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigError(f"--host {host}: the simulator listens on loopback only")
    except ValueError:
        raise ConfigError(f"--host {host!r} is not an IP address") from None
    plan = None
    if call is not None:
        numbers = [n.strip() for value in number or [] for n in value.split(",") if n.strip()]
        if not numbers:
            raise ConfigError("--call needs at least one --number")
        target_host, target_port = _target(call)
        plan = CallPlan(
            target_host, target_port, numbers, count=calls, rate=rate, talk_seconds=talk,
            username=call_user, password=call_password,
        )  # fmt: skip
    elif number:
        raise ConfigError("--number needs --call HOST:PORT")
    parsed = load_script(script)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    simulator = PstnSimulator(
        parsed, out, host=host, port=port, max_calls=max_calls, voice=Voice(use_espeak=not tones)
    )
    asyncio.run(_serve(simulator, plan))
