"""`pbx prompt`: the prompt set callers hear (IVR greetings, voicemail phrases).

`list` shows each prompt with its length; `say NAME "text"` synthesizes one with
espeak-ng; `add NAME FILE.wav` imports any WAV (converted to 8 kHz mono); `del`
removes one; `defaults` creates whichever system prompts are missing (spoken when
espeak-ng is installed, tones otherwise) and never replaces an existing one.
Errors are `ivr.prompts.PromptError`s, which the `pbx` group prints as one
`pbx: error: …` line with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of, require_database
from ivr.prompts import RATE, PromptError, PromptStore

prompt_app = typer.Typer(
    name="prompt",
    help="Manage the prompts callers hear (8 kHz mono WAV files in the data directory).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="Prompt name: 1-64 of a-z, 0-9, - and _.")
]


def prompt_store(data_dir: Path | None, write: bool = False) -> PromptStore:
    """The prompt set of a data directory (the default one when None).

    Raises: ConfigError when `write` is set and the directory has no database (a typo).
    """
    directory = data_dir_of(data_dir)
    return PromptStore((require_database(directory) if write else directory) / "prompts")


def _seconds(store: PromptStore, name: str) -> str:
    try:
        return f"{store.duration(name):.2f}"
    except PromptError:
        return "unreadable"


@prompt_app.command("list")
def list_command(data_dir: DataDirOption = None) -> None:
    """List the prompts and their lengths in seconds."""
    store = prompt_store(data_dir)
    names = store.names()
    if not names:
        typer.echo("no prompts; create the default set with `pbx prompt defaults`")
        return
    width = max(len("NAME"), *(len(n) for n in names))
    typer.echo(f"{'NAME'.ljust(width)}  SECONDS")
    for name in names:
        typer.echo(f"{name.ljust(width)}  {_seconds(store, name)}")


def _saved(store: PromptStore, name: str) -> None:
    typer.echo(f"saved prompt {name} ({len(store.load(name)) / RATE:.2f} s)")


@prompt_app.command("say")
def say_command(
    name: NameArgument,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="What the prompt says.")],
    voice: Annotated[
        str | None, typer.Option("--voice", "-v", help="An espeak-ng voice, e.g. en-us.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Synthesize a prompt with espeak-ng (replaces one of the same name)."""
    store = prompt_store(data_dir, write=True)
    store.say(name, text, voice)
    _saved(store, name)


@prompt_app.command("add")
def add_command(
    name: NameArgument,
    file: Annotated[Path, typer.Argument(metavar="FILE.wav", help="Any WAV file.")],
    data_dir: DataDirOption = None,
) -> None:
    """Import a WAV file as a prompt, converted to 8 kHz mono (replaces one)."""
    store = prompt_store(data_dir, write=True)
    store.add(name, file)
    _saved(store, name)


@prompt_app.command("del")
def del_command(name: NameArgument, data_dir: DataDirOption = None) -> None:
    """Delete a prompt."""
    prompt_store(data_dir, write=True).delete(name)
    typer.echo(f"deleted prompt {name}")


@prompt_app.command("defaults")
def defaults_command(data_dir: DataDirOption = None) -> None:
    """Create the missing system prompts (spoken with espeak-ng, else tones).

    Once espeak-ng is installed, it also replaces the prompts that were made as tone
    patterns for lack of it (your own recordings are never touched).
    """
    store = prompt_store(data_dir, write=True)
    existed = set(store.names())
    created = store.ensure_defaults(replace_tones=True)
    if not created:
        typer.echo("every default prompt exists already")
        return
    for name in created:
        verb = "replaced tones of" if name in existed else "created"
        typer.echo(f"{verb} prompt {name} ({_seconds(store, name)} s)")
