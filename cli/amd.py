"""`pbx amd`: answering-machine detection on recorded audio.

`pbx amd classify FILE.wav …` runs the detector of `media.amd` on each file as if
the file started at the moment of answer and prints one JSON object per line. It is
the detector `pbx.api.detect_machine` runs on live calls, fed the same way: one
20 ms frame at a time, stopping when it has decided (and heard the beep).
A file that cannot be read gets one `pbx: error: FILE: reason` line on stderr;
the other files still run and the exit status is 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from media.amd import classify
from media.wav import WavError, load_mono

amd_app = typer.Typer(
    name="amd",
    help="Answering-machine detection (AMD) on recorded calls.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def classify_file(path: Path) -> dict[str, object]:
    """The JSON object for one file. Raises: WavError when it cannot be read."""
    result = classify(load_mono(path, 8000))
    return {
        "file": str(path),
        "result": result.result.value,
        "decision_ms": result.decision_ms,
        "beep_ms": result.beep.end_ms if result.beep is not None else None,
    }


@amd_app.command("classify")
def classify_command(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE.wav...", help="WAV files (any rate, mono or stereo)."),
    ],
) -> None:
    """Print {"file", "result", "decision_ms", "beep_ms"} per file, one JSON object a line.

    result is HUMAN, MACHINE or NOTSURE; decision_ms the time from the start of the
    file at which the detector decided; beep_ms the end of the beep after a machine's
    greeting (when a message could start), or null.
    """
    failed = False
    for path in files:
        try:
            line = classify_file(path)
        except WavError as exc:
            typer.echo(f"pbx: error: {path}: {' '.join(exc.reason.split())}", err=True)
            failed = True
            continue
        typer.echo(json.dumps(line))
    if failed:
        raise typer.Exit(1)
