"""`pbx sim pstn`: run the PSTN simulator, a SIP provider on loopback (pbx.sim).

Point a trunk at it to test a setup without a real provider: it registers accounts
with digest, and each called number behaves as the script says (live person, answering
machine, busy, no answer, invalid, congestion, slow answer). It writes a WAV of what
it heard on each answered call and one JSON line per attempt into --out. It runs until
interrupted (Ctrl-C or SIGTERM). Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from pbx.errors import ConfigError
from pbx.sim.script import load_script
from pbx.sim.server import PstnSimulator
from pbx.sim.voice import Voice

sim_app = typer.Typer(
    name="sim",
    help="Simulators for testing a setup (a PSTN provider).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


async def _serve(simulator: PstnSimulator) -> None:
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
        await stop.wait()
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every attempt.")] = False,
) -> None:
    """Run a simulated SIP provider (registrar + called numbers) until interrupted."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigError(f"--host {host}: the simulator listens on loopback only")
    except ValueError:
        raise ConfigError(f"--host {host!r} is not an IP address") from None
    parsed = load_script(script)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    simulator = PstnSimulator(parsed, out, host=host, port=port, voice=Voice(use_espeak=not tones))
    asyncio.run(_serve(simulator))
