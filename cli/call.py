"""`pbx call originate A B`: click-to-call through the running server.

The server rings A (showing B's number); when A answers it rings B (showing A's
number, or `--caller-id`) and bridges the two. The command returns at once with the
originate's id, which the two calls' CDRs name (`pbx cdr list`). Errors (server not
running, unknown A) end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import DataDirOption, data_dir_of
from pbx import control
from pbx.config import Settings

call_app = typer.Typer(
    name="call",
    help="Place calls through the running server.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@call_app.command("originate")
def originate(
    a: Annotated[
        str, typer.Argument(metavar="A", help="The extension rung first (it hears ringback).")
    ],
    b: Annotated[str, typer.Argument(metavar="B", help="The number rung once A answers.")],
    caller_id: Annotated[
        str | None,
        typer.Option("--caller-id", help="What B's phone shows [default: A].", show_default=False),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Click-to-call: ring A, and when A answers, ring B and connect them."""
    settings = Settings(data_dir=data_dir_of(data_dir))
    result = control.originate(settings, a, b, caller_id)
    typer.echo(str(result.get("id", "")))
