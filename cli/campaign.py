"""`pbx campaign create|set|list|show|start|pause|stop|stats|import`: outbound campaigns.

Settings live in the database (pbx.store.campaigns). start, pause and stop go through
the running server's dialer when one runs (`POST /dialer/campaign`: it acts at once),
else they write the campaign's state, which the dialer reads when it starts. `stats`
asks the running dialer (`GET /dialer/stats`) or computes the figures from the stored
attempts. `import` reads a CSV contact list (pbx.store.contact_csv): bad rows are
reported by line and left out, the good ones kept (exit 1 if any row was bad).
Errors end in one `pbx: error: …` line, exit 1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from acd.campaign import CampaignRules
from acd.campaign_stats import campaign_figures
from cli import reports
from cli.common import (
    DataDirOption,
    data_dir_of,
    format_table,
    open_existing,
    read_import_file,
    run,
)
from pbx.config import Settings
from pbx.errors import ConfigError
from pbx.store import Campaign
from pbx.store.campaigns import OUTCOMES, coerce
from pbx.store.contact_csv import ContactImport, parse_contacts
from pbx.store.customer_csv import parse_mapping
from pbx.store.e164 import country as parse_country

campaign_app = typer.Typer(
    name="campaign",
    help="Outbound campaigns: settings, contact lists, start/pause/stop, figures.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The campaign.")]
COUNTRY_KEY = "customer_country"  # the default country customer imports remember


def parse_window(text: str) -> tuple[str, str]:
    """ "09:00-21:00" -> ("09:00", "21:00"). Raises: ConfigError."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ConfigError(f"--window {text!r}: write HH:MM-HH:MM")
    return start.strip(), end.strip()


def parse_retry_options(items: list[str]) -> str:
    """["busy=600/3", ...] -> the stored JSON. Raises: ConfigError."""
    rules: dict[str, list[float | int]] = {}
    for item in items:
        outcome, sep, rule = item.partition("=")
        delay, slash, most = rule.partition("/")
        if not sep or not slash or outcome not in OUTCOMES:
            raise ConfigError(
                f"--retry {item!r}: write OUTCOME=DELAY/MAX, OUTCOME one of {', '.join(OUTCOMES)}"
            )
        try:
            rules[outcome] = [float(delay), int(most)]
        except ValueError:
            raise ConfigError(f"--retry {item!r}: DELAY seconds and MAX a whole number") from None
    return json.dumps(rules)


async def _create(data_dir: Path, campaign: Campaign) -> Campaign:
    async with await open_existing(data_dir) as store:
        return await store.campaigns.create(campaign)


@campaign_app.command("create")
def campaign_create(
    name: NameArg,
    caller_id: Annotated[
        str, typer.Option(help="Caller ID presented (a number that can be called back).")
    ],
    queue: Annotated[str, typer.Option(help="The queue whose agents serve the campaign.")] = "",
    trunk: Annotated[
        str, typer.Option(help="trunk:NAME to dial through (default: the outbound routes).")
    ] = "",
    mode: Annotated[
        str, typer.Option(help="preview, progressive, predictive or agentless.")
    ] = "progressive",
    window: Annotated[
        str, typer.Option(help="Calling window in the callee's local time.")
    ] = "09:00-21:00",
    retry: Annotated[
        list[str] | None, typer.Option(help="OUTCOME=DELAY/MAX, e.g. busy=600/3 (repeatable).")
    ] = None,
    max_attempts: Annotated[int, typer.Option(help="Attempts per contact at most.")] = 5,
    ring_timeout: Annotated[float, typer.Option(help="Seconds to ring (at least 15).")] = 25.0,
    amd: Annotated[
        bool, typer.Option("--amd/--no-amd", help="Answering-machine detection.")
    ] = True,
    machine_policy: Annotated[
        str, typer.Option(help="hangup, or message (after the beep).")
    ] = "hangup",
    machine_message: Annotated[str, typer.Option(help="The prompt left on machines.")] = "",
    notsure: Annotated[str, typer.Option(help="AMD not sure: agent or hangup.")] = "agent",
    script: Annotated[str, typer.Option(help="Script text shown on the agent desktop.")] = "",
    reserve: Annotated[int, typer.Option(help="Agents kept free for inbound calls.")] = 0,
    max_lines: Annotated[int, typer.Option(help="Calls in progress at most.")] = 10,
    target: Annotated[float, typer.Option(help="Abandon target in percent.")] = 3.0,
    profile: Annotated[str, typer.Option(help="Compliance profile: US or UK.")] = "US",
    amd_fp: Annotated[
        float, typer.Option(help="AMD's measured false-positive rate in percent (UK counts it).")
    ] = 0.0,
    seller: Annotated[str, typer.Option(help="Seller's name (safe-harbour message).")] = "",
    seller_number: Annotated[str, typer.Option(help="Number the safe-harbour message gives.")] = "",
    message: Annotated[
        str, typer.Option(help="Agentless: the prompt played to whoever answers.")
    ] = "",
    data_dir: DataDirOption = None,
) -> None:
    """Create a campaign (stopped; `pbx campaign start NAME` starts it)."""
    start, end = parse_window(window)
    made = run(
        _create(
            data_dir_of(data_dir),
            Campaign(
                name=name,
                caller_id=caller_id,
                trunk=trunk,
                queue=queue,
                mode=mode,
                window_start=start,
                window_end=end,
                retries=parse_retry_options(retry or []),
                max_attempts=max_attempts,
                ring_timeout=ring_timeout,
                amd=amd,
                machine_policy=machine_policy,
                machine_message=machine_message,
                notsure_policy=notsure,
                script=script,
                inbound_reserve=reserve,
                max_lines=max_lines,
                abandon_target=target / 100,
                profile=profile,
                amd_fp_rate=amd_fp / 100,
                seller=seller,
                seller_number=seller_number or caller_id,
                agentless_message=message,
            ),
        )
    )
    typer.echo(f"created campaign {made.name} ({made.mode}, {made.state})")


async def _update(data_dir: Path, name: str, changes: dict[str, Any]) -> Campaign:
    async with await open_existing(data_dir) as store:
        return await store.campaigns.update(name, changes)


@campaign_app.command("set")
def campaign_set(
    name: NameArg,
    key: Annotated[
        str, typer.Argument(help="A setting (as `pbx campaign show` names it), or window/retry.")
    ],
    value: Annotated[str, typer.Argument(help="Its new value.")],
    data_dir: DataDirOption = None,
) -> None:
    """Change one setting; the running dialer follows."""
    changes: dict[str, Any]
    if key == "window":
        start, end = parse_window(value)
        changes = {"window_start": start, "window_end": end}
    elif key == "retry":
        changes = {"retries": parse_retry_options(value.split(","))}
    elif key == "target":
        changes = {"abandon_target": float(coerce("abandon_target", value)) / 100}
    else:
        changes = {key: coerce(key, value)}
    made = run(_update(data_dir_of(data_dir), name, changes))
    shown = ", ".join(f"{k} {getattr(made, k)}" for k in changes)
    typer.echo(f"campaign {name}: {shown}")


async def _all(data_dir: Path) -> list[tuple[Campaign, dict[str, int]]]:
    async with await open_existing(data_dir) as store:
        return [(c, await store.contacts.counts(c.name)) for c in await store.campaigns.all()]


@campaign_app.command("list")
def campaign_list(data_dir: DataDirOption = None) -> None:
    """Every campaign with its mode, state and contacts per state."""
    rows = [
        [
            c.name,
            c.mode,
            c.state,
            c.queue or "-",
            c.trunk or "-",
            str(sum(n.values())),
            str(n["pending"]),
            str(n["done"]),
            str(n["dnc"]),
        ]
        for c, n in run(_all(data_dir_of(data_dir)))
    ]
    if not rows:
        typer.echo("no campaigns; create one with `pbx campaign create NAME --caller-id N`")
        return
    headers = ["NAME", "MODE", "STATE", "QUEUE", "TRUNK", "CONTACTS", "PENDING", "DONE", "DNC"]
    typer.echo(format_table(headers, rows))


async def _get(data_dir: Path, name: str) -> Campaign:
    async with await open_existing(data_dir) as store:
        return await store.campaigns.get(name)


@campaign_app.command("show")
def campaign_show(name: NameArg, data_dir: DataDirOption = None) -> None:
    """Every setting of a campaign."""
    for key, value in run(_get(data_dir_of(data_dir), name)).to_json().items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")


def _state(data_dir: Path | None, name: str, action: str) -> None:
    settings = Settings(data_dir=data_dir_of(data_dir))
    if reports.server_running(settings):
        from pbx import control

        answer = control.request(
            settings, "/dialer/campaign", method="POST", body={"campaign": name, "action": action}
        )
        typer.echo(f"campaign {name}: {answer.get('state', '?')} (the running dialer follows)")
        return
    state = {"start": "running", "pause": "paused", "stop": "stopped"}[action]
    made = run(_update(settings.data_dir, name, {"state": state}))
    typer.echo(f"campaign {name}: {made.state} (the dialer follows when the server runs)")


@campaign_app.command("start")
def campaign_start(name: NameArg, data_dir: DataDirOption = None) -> None:
    """Start (or resume) dialling."""
    _state(data_dir, name, "start")


@campaign_app.command("pause")
def campaign_pause(name: NameArg, data_dir: DataDirOption = None) -> None:
    """Stop placing new calls; calls in progress go on."""
    _state(data_dir, name, "pause")


@campaign_app.command("stop")
def campaign_stop(name: NameArg, data_dir: DataDirOption = None) -> None:
    """Stop the campaign (calls in progress go on to their end)."""
    _state(data_dir, name, "stop")


async def _stats(data_dir: Path, name: str) -> dict[str, Any]:
    async with await open_existing(data_dir) as store:
        campaign = await store.campaigns.get(name)
        rules = CampaignRules.of(campaign)
        now = time.time()
        attempts = await store.attempts.of_campaign(name, since=now - 31 * 86400.0)
        counts = await store.contacts.counts(name)
    return campaign_figures(
        attempts, rules.profile, now, amd_fp_rate=rules.amd_fp_rate, contacts=counts
    )


@campaign_app.command("stats")
def campaign_stats(
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Dialled, answered, human/machine, connected, dropped, abandon % (today, window)."""
    settings = Settings(data_dir=data_dir_of(data_dir))
    if reports.server_running(settings):
        from pbx import control

        figures = control.request(settings, f"/dialer/stats?campaign={name}")
    else:
        figures = run(_stats(settings.data_dir, name))
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True))
        return
    for key in (
        "dialled",
        "answered",
        "human",
        "machine",
        "connected",
        "dropped",
        "busy",
        "no_answer",
        "failed",
        "abandon_today_pct",
        "abandon_rolling_pct",
    ):
        typer.echo(f"{key}: {figures.get(key)}")
    contacts = figures.get("contacts") or {}
    typer.echo("contacts: " + ", ".join(f"{k} {v}" for k, v in contacts.items()))
    for agent, pct in sorted((figures.get("talk_pct") or {}).items()):
        typer.echo(f"agent {agent}: talk {pct} %")


async def _import(
    data_dir: Path, name: str, text: str, country: str | None, mapping: dict[str, str]
) -> tuple[ContactImport, int, str]:
    async with await open_existing(data_dir) as store:
        await store.campaigns.get(name)
        if country is None:
            country = await store.settings.get(COUNTRY_KEY)
        if country is not None:
            parse_country(country)
        result = parse_contacts(text, country, mapping)
        added, _ = await store.contacts.add_many(name, [c for _, c in result.rows])
    return result, added, country.strip().upper() if country else "E.164 only"


@campaign_app.command("import")
def campaign_import(
    name: NameArg,
    file: Annotated[Path, typer.Argument(help="A CSV file with a header line.")],
    country: Annotated[
        str | None, typer.Option(help="Default country of national numbers: ISO code (GB) or +44.")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="number=Header or zone=Header (repeatable)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import contacts (numbers to E.164; other columns become the screen-pop record)."""
    text = read_import_file(file)
    mapping = {}
    for pair in map_ or []:
        field, sep, header = pair.partition("=")
        if field.strip() in ("number", "zone") and sep:
            mapping[field.strip()] = header
        else:
            parse_mapping([pair])  # its one-line error for a malformed pair
            raise ConfigError(f"--map {pair!r}: a contact list maps number or zone")
    result, added, used = run(_import(data_dir_of(data_dir), name, text, country, mapping))
    for error in result.errors:
        typer.echo(f"{file}:{error.line}: {error.message}", err=True)
    kept = len(result.rows)
    typer.echo(
        f"imported {kept} contacts into {name} ({added} new, {kept - added} updated)"
        f" (numbers read as {used})"
        + (f"; {len(result.errors)} rows left out" if result.errors else "")
    )
    if result.errors:
        raise typer.Exit(1)
