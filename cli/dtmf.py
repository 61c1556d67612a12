"""`pbx dtmf`: in-band DTMF detection on recorded audio.

`pbx dtmf detect FILE.wav` runs the detector of `media.dtmf` over the whole file
(any rate and channel count; it is converted to 8 kHz mono first) and prints the
digits on one line; `--verbose` prints one line per digit with its start and
duration in milliseconds. A file that cannot be read ends in one
`pbx: error: FILE: reason` line on stderr and exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from media.dtmf import detect_digits
from media.wav import WavError, load_mono

dtmf_app = typer.Typer(
    name="dtmf",
    help="DTMF (touch-tone) tools.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@dtmf_app.command("detect")
def detect_command(
    file: Annotated[Path, typer.Argument(metavar="FILE.wav", help="A WAV file (any rate).")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per digit: start and duration.")
    ] = False,
) -> None:
    """Print the in-band DTMF digits heard in a WAV file."""
    try:
        audio = load_mono(file, 8000)
    except WavError as exc:
        typer.echo(f"pbx: error: {file}: {' '.join(exc.reason.split())}", err=True)
        raise typer.Exit(1) from None
    digits = detect_digits(audio)
    if verbose:
        for d in digits:
            typer.echo(f"{d.digit} start_ms={d.start_ms:.0f} duration_ms={d.duration_ms:.0f}")
        return
    typer.echo("".join(d.digit for d in digits))
