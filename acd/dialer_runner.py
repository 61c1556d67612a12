"""One running campaign's loop (acd/dialer.py owns one per running campaign).

About once a second, and after every burst of events that matter (an attempt ended, an
agent's state changed), the loop builds the pacer's view (acd/pacers.py) from the ACD's
agents of the campaign's queue (free ones beyond the inbound reserve and the callers
waiting; talking and wrap-up times), its own calls ringing and answered-but-not-with-
an-agent, and the compliance window's live answers and drops; asks the pacer for lines;
takes due contacts (acd/campaign.py: DNC, window, lockout) and places each attempt
(acd/dialer_call.py). When an attempt ends its row is stored, the pacer and the abandon
ledger learn its fate, and its contact is settled: done, or pending again at the retry
time of its outcome. A campaign whose contacts are all settled stops ("finished").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from acd.campaign import CampaignRules, Verdict, after_attempt, as_attempt, contact_verdict
from acd.compliance import AbandonLedger
from acd.dialer_call import AttemptState, Prompts, place_call
from acd.model import AgentState
from acd.pacers import (
    AgentlessPacer,
    Pacer,
    PacerView,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
)
from acd.pacing import HandleModel, Snapshot, outbound_agents
from pbx.api import Campaign, CampaignEvent, Contact, DialAttempt, PbxError

if TYPE_CHECKING:
    from acd.dialer import Dialer

log = logging.getLogger(__name__)

__all__ = ["CampaignRunner"]

_PRIOR = HandleModel.from_mean(120.0, 1.0, 10.0)  # until a campaign has measured its own
_AMD_PRIOR_S = 1.5  # AMD's decision time after the answer, for the predictive rule
_DAY = 86400.0
HISTORY_DAYS = 31
_SETTLE = 0.02  # seconds to let a burst of events in before deciding again
_CALLBACK_EVERY = 2.0  # seconds between looks for due scheduled callbacks
_LONGEST_CALL = 4 * 3600.0  # a drop ends long before this after its dial
_QUIET = 1.0  # seconds before the store is asked again once it had no more contacts due


def _pacer(campaign: Campaign) -> Pacer:
    mode = campaign.mode
    if mode == "preview":
        return PreviewPacer()
    if mode == "agentless":
        return AgentlessPacer(campaign.max_lines)
    if mode == "predictive":
        return PredictivePacer(
            ring_timeout=campaign.ring_timeout,
            amd_seconds=_AMD_PRIOR_S if campaign.amd else 0.0,
            prior=_PRIOR,
            target=campaign.abandon_target,
        )
    return ProgressivePacer()


class CampaignRunner:
    """One running campaign's loop and its calls in progress."""

    def __init__(self, dialer: Dialer, campaign: Campaign) -> None:
        self.dialer = dialer
        self.campaign = campaign
        self.rules = CampaignRules.of(campaign)
        self.pacer = _pacer(campaign)
        self.ledger = AbandonLedger(self.rules.profile, self.rules.amd_fp_rate)
        self.calls: dict[int, AttemptState] = {}  # attempt serial -> state
        self.wake = asyncio.Event()
        self._serial = 0
        self._prompts: Prompts | None = None
        #: One load of the prompts at a time: the first lines of a campaign all ask at
        #: once, and each would speak and resample the message in a thread of its own
        #: (300 at once held the GIL from the loop just as the calls were answered).
        self._prompts_lock = asyncio.Lock()
        self._callbacks_at = 0.0
        self._quiet_until = 0.0
        self._prepared = False

    def follow(self, campaign: Campaign) -> None:
        """New settings from the store (a pacer of another mode starts afresh)."""
        if campaign.mode != self.campaign.mode:
            self.pacer = _pacer(campaign)
        if (campaign.seller, campaign.seller_number) != (
            self.campaign.seller,
            self.campaign.seller_number,
        ) or campaign.machine_message != self.campaign.machine_message:
            self._prompts = None
        self.campaign = campaign
        self.rules = CampaignRules.of(campaign)
        self._quiet_until = 0.0  # contacts may have been imported
        self.wake.set()

    async def prepare(self) -> None:
        """Contacts a killed server left dialling are pending again; the window's
        answers are read back into the abandon ledger. Once per runner: a paused
        campaign resumed keeps its calls in progress (their contacts stay dialling)."""
        if self._prepared:
            return
        self._prepared = True
        store = self.dialer.switch.contact_store
        recovered = await store.recover(self.campaign.name)
        if recovered:
            log.info("campaign %s: %d contacts pending again", self.campaign.name, recovered)
        since = self.dialer.clock() - HISTORY_DAYS * _DAY
        for a in await self.dialer.switch.attempt_store.of_campaign(self.campaign.name, since):
            self.ledger.record(as_attempt(a))

    async def prompts(self) -> Prompts:
        async with self._prompts_lock:
            if self._prompts is None:
                self._prompts = await self.dialer.campaign_prompts(self.campaign)
            return self._prompts

    # -- the view ----------------------------------------------------------------------

    def view(self, now: float) -> PacerView:
        agents = self.dialer.acd.queue_agents(self.campaign.queue) if self.campaign.queue else []
        talk: list[float] = []
        wrap: list[float] = []
        for a in agents:
            if a.state is AgentState.ON_CALL:
                talk.append(now - a.state_since)
            elif a.state is AgentState.WRAP_UP:
                left = self.dialer.acd.wrapup_seconds(a.name, self.campaign.queue)
                wrap.append(max(0.0, left - (now - a.state_since)))
        working = sum(
            1 for a in agents if a.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED)
        )
        queue = self.campaign.queue
        free = outbound_agents(
            self.dialer.capacity(queue, ours=False), self.campaign.inbound_reserve
        )
        ringing = tuple(now - s.dialed_at for s in self.calls.values() if s.phase == "ringing")
        waiting = sum(1 for s in self.calls.values() if s.phase in ("amd", "waiting"))
        if self.campaign.mode == "agentless":
            talk = [0.0] * sum(1 for s in self.calls.values() if s.phase == "agent")
        rate = self.ledger.rate(now)
        snap = Snapshot(free, tuple(talk), tuple(wrap), ringing, waiting)
        fp = round(rate.estimated_false_positives)  # UK: people AMD hung up on, estimated
        return PacerView(now, snap, working, rate.live + fp, rate.abandoned + fp)

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        name = self.campaign.name
        await self.prepare()
        self.dialer.publish(CampaignEvent("", name, "started"))
        try:
            while self.campaign.state == "running":
                self.wake.clear()
                now = self.dialer.clock()
                if now >= self._callbacks_at:  # a read of the store: not at every event
                    self._callbacks_at = now + _CALLBACK_EVERY
                    await self.dialer.callbacks_due(self, now)
                room = max(0, self.campaign.max_lines - len(self.calls))
                lines = min(room, self.pacer.lines(self.view(now)))
                if lines > 0:
                    await self._dial_due(lines, now)
                if not self.calls and await self._finished():
                    log.info("campaign %s: every contact is done", name)
                    await self.dialer.switch.campaign_store.set_state(name, "stopped")
                    self.campaign = await self.dialer.switch.campaign_store.get(name)
                    self.dialer.publish(CampaignEvent("", name, "finished"))
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.pacer.interval):
                        await self.wake.wait()
                # Events come in bursts (hundreds of calls): decide once per burst.
                await asyncio.sleep(_SETTLE)
        finally:
            self.dialer.publish(CampaignEvent("", name, self.campaign.state))

    async def _finished(self) -> bool:
        store = self.dialer.switch.contact_store
        counts = await store.counts(self.campaign.name)
        return (
            counts["pending"] == 0 and counts["dialling"] == 0 and self.campaign.mode != "preview"
        )

    async def _dial_due(self, lines: int, now: float) -> None:
        """Place up to `lines` calls to due contacts (checked in one batch, claimed in one
        transaction: hundreds of lines start within a second)."""
        if now < self._quiet_until:
            return  # the last look found no more due: the store is not asked at every event
        store = self.dialer.switch.contact_store
        limit = lines * 2 + 5
        due = await store.due(self.campaign.name, now, limit=limit)
        if len(due) < limit:
            self._quiet_until = now + _QUIET
        barred = await self.dialer.switch.dnc_store.listed_among(
            [c.number for c in due], self.campaign.name
        )
        chosen: list[Contact] = []
        for contact in due:
            if len(chosen) >= lines:
                break
            if await self.check(contact, now, listed=contact.number in barred):
                chosen.append(contact)
        claimed = set(await store.claim_many([c.id for c in chosen]))
        for contact in chosen:
            if contact.id in claimed:
                self.start_attempt(contact, contact.number)

    async def check(self, contact: Contact, now: float, *, listed: bool | None = None) -> bool:
        """Whether the contact may be dialled now; settles it when not. `listed`: whether
        it is on a DNC list, when the caller looked it up already."""
        switch = self.dialer.switch
        name = self.campaign.name
        if listed is None:
            listed = await switch.dnc_store.listed(contact.number, name) is not None
        history = []
        lockout = self.rules.profile.lockout
        # Preview and progressive calls each have an agent kept for them: the lockout
        # after a drop ("unless an agent is reserved for the call") does not hold them.
        reserved = self.campaign.mode in ("preview", "progressive")
        if lockout > 0 and not listed and not reserved:
            since = now - lockout - self.campaign.ring_timeout - _LONGEST_CALL
            history = [
                as_attempt(a) for a in await switch.attempt_store.of_number(contact.number, since)
            ]
        decision = contact_verdict(
            self.rules,
            contact.number,
            contact.zone,
            now,
            dnc=listed,
            history=history,
            reserved_agent=reserved,
        )
        if decision.verdict is Verdict.DIAL:
            return True
        store = switch.contact_store
        if decision.verdict is Verdict.DNC:
            await store.settle(contact.id, "dnc", outcome="dnc", attempted=False)
        elif decision.verdict is Verdict.FAILED:
            await store.settle(contact.id, "failed", outcome="failed", attempted=False)
        else:
            await store.settle(contact.id, "pending", next_try=decision.at, attempted=False)
        log.info("campaign %s: %s not dialled: %s", name, contact.number, decision.why)
        self.dialer.publish(
            CampaignEvent("", name, "skipped", contact.number, {"why": decision.why})
        )
        return False

    def start_attempt(
        self, contact: Contact | None, number: str, callback: int | None = None
    ) -> None:
        """Dial `number` (a contact's, or a scheduled `callback`'s) in a task of its own."""
        self._serial += 1
        serial = self._serial
        state = AttemptState(number, self.dialer.clock())
        if contact is not None:
            state.record = dict(contact.fields)
        self.calls[serial] = state
        self.dialer.spawn(
            self._attempt(serial, contact, number, state, callback),
            f"campaign {self.campaign.name} {number}",
        )

    async def _attempt(
        self,
        serial: int,
        contact: Contact | None,
        number: str,
        state: AttemptState,
        callback: int | None,
    ) -> None:
        name = self.campaign.name
        try:
            prompts = await self.prompts()

            def answered(kind: str, ring: float) -> None:
                self.pacer.dial_result(self.dialer.clock(), kind, ring)
                self.wake.set()

            attempt = await place_call(
                self.dialer, self.campaign, contact, number, prompts, state, on_answer=answered
            )
        except Exception:
            log.exception("campaign %s: the attempt to %s failed", name, number)
            now = self.dialer.clock()
            attempt = DialAttempt(
                name,
                number,
                state.dialed_at,
                now,
                "failed",
                contact=contact.id if contact else None,
            )
        finally:
            self.calls.pop(serial, None)
            self.wake.set()
        try:
            await self.record(attempt, contact, callback)
        except PbxError:
            log.exception("campaign %s: attempt to %s not stored", name, number)

    async def record(
        self, attempt: DialAttempt, contact: Contact | None, callback: int | None = None
    ) -> None:
        """Store the attempt, count it, and settle its contact or scheduled callback:
        done, or due again by the campaign's retry rules."""
        switch = self.dialer.switch
        await switch.attempt_store.add(attempt)
        record = as_attempt(attempt)
        self.ledger.record(record)
        if record.live:
            self.pacer.live_answer(attempt.ended_at, record.abandoned)
        self.dialer.publish(
            CampaignEvent(
                attempt.call_id,
                self.campaign.name,
                "ended",
                attempt.number,
                {"outcome": attempt.outcome, "agent": attempt.agent, "abandoned": record.abandoned},
            )
        )
        if contact is None and callback is None:
            return
        history = [
            as_attempt(a)
            for a in await switch.attempt_store.of_number(attempt.number)
            if a.campaign == self.campaign.name
        ]
        again = None if attempt.opted_out else after_attempt(self.rules, history)
        if callback is not None:
            callbacks = switch.scheduled_callback_store
            await (callbacks.set_state(callback, "done") if again is None
                   else callbacks.retry(callback, again))  # fmt: skip
        if contact is None:
            return
        if again is None:
            await switch.contact_store.settle(contact.id, "done", outcome=attempt.outcome)
        else:
            await switch.contact_store.settle(
                contact.id, "pending", outcome=attempt.outcome, next_try=again
            )
