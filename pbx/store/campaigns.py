"""Outbound campaigns (issue 17): the settings `pbx campaign create|set` write and the
dialer (acd/dialer.py) reads, and the campaign's state (stopped, running, paused),
which the CLI sets offline and the running dialer follows.

Checks here are the ones the data itself needs (a ring timeout of at least 15 s, a
window that starts before it ends, retry rules per outcome); the table's CHECKs hold
them too, so another writer cannot store a campaign the dialer would misread.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pbx.errors import ConfigError, NotFoundError
from pbx.store.database import Database

__all__ = [
    "CAMPAIGN_STATES",
    "MODES",
    "OUTCOMES",
    "Campaign",
    "CampaignRepo",
    "check_campaign",
    "parse_retries",
]

MODES = ("preview", "progressive", "predictive", "agentless")
CAMPAIGN_STATES = ("stopped", "running", "paused")
#: Outcomes a retry rule may name (acd.compliance.Outcome values but "connected").
OUTCOMES = ("busy", "no_answer", "machine", "failed", "dropped")
MIN_RING_TIMEOUT = 15.0  # FTC TSR 310.4(b)(4)(i): 15 s or four rings
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_TEXT_MAX = 4000


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign's settings (see the migration's table for the meaning of each)."""

    name: str
    caller_id: str
    trunk: str = ""  # "trunk:NAME" (the number is appended) or "" for the dial plan
    queue: str = ""
    mode: str = "progressive"
    window_start: str = "09:00"
    window_end: str = "21:00"
    retries: str = "{}"  # JSON {outcome: [delay seconds, max attempts]}
    max_attempts: int = 5
    ring_timeout: float = 25.0
    amd: bool = True
    machine_policy: str = "hangup"  # or "message": leave machine_message after the beep
    machine_message: str = ""  # a prompt name
    notsure_policy: str = "agent"  # or "hangup"
    script: str = ""  # shown on the agent desktop
    inbound_reserve: int = 0  # agents kept free for inbound calls
    max_lines: int = 10
    abandon_target: float = 0.03
    profile: str = "US"
    amd_fp_rate: float = 0.0  # AMD's measured false positives (the UK profile counts them)
    seller: str = ""  # the safe-harbour prompt names the seller ...
    seller_number: str = ""  # ... and a number to call back
    agentless_message: str = ""  # a prompt name (agentless mode)
    state: str = "stopped"
    created: float = 0.0
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["retries"] = json.loads(self.retries)
        return out


SETTABLE = tuple(f.name for f in fields(Campaign) if f.name not in ("name", "created", "updated"))
_COLUMNS = ", ".join(f.name for f in fields(Campaign))


def parse_retries(text: str) -> dict[str, tuple[float, int]]:
    """Retry rules as stored: {"busy": [600, 3], ...} -> {outcome: (delay, max)}.

    Raises: ConfigError (not JSON, an unknown outcome, a negative delay or count).
    """
    try:
        raw = json.loads(text)
    except ValueError:
        raise ConfigError(f"retry rules are not JSON: {text[:60]!r}") from None
    if not isinstance(raw, dict):
        raise ConfigError('retry rules are a JSON object: {"busy": [600, 3], ...}')
    rules: dict[str, tuple[float, int]] = {}
    for outcome, rule in raw.items():
        if outcome not in OUTCOMES:
            raise ConfigError(f"retry rule for {outcome!r}: the outcomes are {', '.join(OUTCOMES)}")
        if (
            not isinstance(rule, list)
            or len(rule) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rule)
        ):
            raise ConfigError(f"retry rule for {outcome}: [delay seconds, max attempts]")
        delay, most = float(rule[0]), rule[1]
        if not math.isfinite(delay) or delay < 0 or not isinstance(most, int) or most < 0:
            raise ConfigError(f"retry rule for {outcome}: a delay >= 0 and a whole count >= 0")
        rules[outcome] = (delay, most)
    return rules


def _text(value: str, what: str, limit: int = 200) -> None:
    if len(value) > limit or "\0" in value:
        raise ConfigError(f"{what} is at most {limit} characters")


def check_campaign(c: Campaign) -> Campaign:
    """The campaign if its settings make sense. Raises: ConfigError saying which does not."""
    if not _NAME.fullmatch(c.name):
        raise ConfigError(
            f"campaign name {c.name!r}: a letter or digit, then up to 39 of A-Z a-z 0-9 _ . -"
        )
    if not c.caller_id or not c.caller_id.lstrip("+").isdigit() or len(c.caller_id) > 20:
        raise ConfigError(f"caller ID {c.caller_id!r}: a number that can be called back")
    if c.trunk and not re.fullmatch(r"trunk:[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", c.trunk):
        raise ConfigError(f"trunk route {c.trunk!r}: write trunk:NAME (or leave it empty)")
    if c.mode not in MODES:
        raise ConfigError(f"mode {c.mode!r}: choose {', '.join(MODES)}")
    if c.mode != "agentless" and not c.queue:
        raise ConfigError(f"a {c.mode} campaign needs the queue whose agents serve it")
    for hhmm in (c.window_start, c.window_end):
        if not _HHMM.fullmatch(hhmm):
            raise ConfigError(f"calling window time {hhmm!r}: write HH:MM")
    if not c.window_start < c.window_end:
        raise ConfigError(
            f"the calling window {c.window_start}-{c.window_end} must start before it ends"
        )
    parse_retries(c.retries)
    if c.max_attempts < 1:
        raise ConfigError("max attempts is at least 1")
    if not math.isfinite(c.ring_timeout) or c.ring_timeout < MIN_RING_TIMEOUT:
        raise ConfigError(
            f"ring timeout must be at least {MIN_RING_TIMEOUT:g} s, not {c.ring_timeout:g}"
        )
    if c.machine_policy not in ("hangup", "message"):
        raise ConfigError(f"machine policy {c.machine_policy!r}: hangup or message")
    if c.machine_policy == "message" and not c.machine_message:
        raise ConfigError("a machine policy of message needs the message (a prompt name)")
    if c.notsure_policy not in ("agent", "hangup"):
        raise ConfigError(f"NOTSURE policy {c.notsure_policy!r}: agent or hangup")
    if c.inbound_reserve < 0 or c.max_lines < 1:
        raise ConfigError("the inbound reserve is >= 0 and max lines >= 1")
    if not 0 < c.abandon_target < 1:
        raise ConfigError(f"abandon target {c.abandon_target}: a fraction (0.03 = 3 %)")
    if not 0 <= c.amd_fp_rate < 1:
        raise ConfigError(f"AMD false-positive rate {c.amd_fp_rate}: a fraction in [0, 1)")
    if c.profile not in ("US", "UK"):
        raise ConfigError(f"profile {c.profile!r}: US or UK")
    if c.state not in CAMPAIGN_STATES:
        raise ConfigError(f"campaign state {c.state!r}: choose {', '.join(CAMPAIGN_STATES)}")
    if c.seller_number and not c.seller_number.lstrip("+").isdigit():
        raise ConfigError(f"seller number {c.seller_number!r}: digits with an optional +")
    for what, value in (
        ("the seller's name", c.seller),
        ("the machine message", c.machine_message),
        ("the agentless message", c.agentless_message),
        ("the queue", c.queue),
    ):
        _text(value, what)
    _text(c.script, "the script", _TEXT_MAX)
    return c


def _campaign(row: sqlite3.Row) -> Campaign:
    values = dict(zip((f.name for f in fields(Campaign)), row, strict=True))
    values["amd"] = bool(values["amd"])
    return Campaign(**values)


def coerce(name: str, value: str) -> Any:
    """A `pbx campaign set NAME KEY VALUE` value as the field's type.

    Raises: ConfigError (an unknown setting or a value of the wrong type).
    """
    if name not in SETTABLE or name == "state":
        raise ConfigError(
            f"unknown setting {name!r}: choose {', '.join(s for s in SETTABLE if s != 'state')}"
        )
    kind = {f.name: f.type for f in fields(Campaign)}[name]
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if value.lower() not in ("on", "off", "yes", "no", "true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("on", "yes", "true", "1")
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a {kind}") from None
    return value


class CampaignRepo:
    """Campaigns in the store."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, campaign: Campaign) -> Campaign:
        """Raises: ConfigError (bad settings, a name taken)."""
        now = self._clock()
        c = check_campaign(replace(campaign, created=now, updated=now))
        names = [f.name for f in fields(Campaign)]
        values = [getattr(c, n) for n in names]
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    f"INSERT INTO campaigns ({_COLUMNS}) VALUES ({', '.join('?' * len(names))})",
                    values,
                )
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise ConfigError(f"campaign {c.name} exists already") from None
            raise
        return c

    async def get(self, name: str) -> Campaign:
        """Raises: NotFoundError."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM campaigns WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no campaign {name!r}")
        return _campaign(row)

    async def all(self) -> list[Campaign]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM campaigns ORDER BY name")
        return [_campaign(r) for r in rows]

    async def update(self, name: str, changes: Mapping[str, Any]) -> Campaign:
        """Change settings (checked as a whole). Raises: NotFoundError, ConfigError."""
        unknown = [k for k in changes if k not in SETTABLE]
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}")
        async with self._db.transaction() as conn:
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM campaigns WHERE name = ?", (name,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"no campaign {name!r}")
            c = check_campaign(replace(_campaign(row), **changes, updated=self._clock()))
            sets = ", ".join(f"{k} = ?" for k in (*changes, "updated"))
            await conn.execute(
                f"UPDATE campaigns SET {sets} WHERE name = ?",
                [getattr(c, k) for k in (*changes, "updated")] + [name],
            )
        return c

    async def set_state(self, name: str, state: str) -> Campaign:
        """start (running), pause, stop. Raises: NotFoundError, ConfigError."""
        return await self.update(name, {"state": state})

    async def delete(self, name: str) -> None:
        """Remove a campaign with its contacts (attempts stay). Raises: NotFoundError."""
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM campaigns WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no campaign {name!r}")
