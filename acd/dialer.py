"""The dialer service (issue 17): one loop per running campaign (acd/dialer_runner.py),
on the Call API; the ACD's agents serve the calls it hands over (acd/dialer_call.py).

What attempts need from it: how many agents of a queue are free for one more call
(`capacity`: available or ringing agents less the callers waiting or being offered,
ringall offers counted right), the hand-over into the queue with the agent's CONNECT
seen on the bus (or in the ACD's engine), the opt-out, the campaign's prompts.

State: the campaign's state lives in the store (`pbx campaign start|pause|stop` offline
or `POST /dialer/campaign`); the dialer follows configuration changes. A paused or
stopped campaign places no new calls; calls in progress go on to their end. A contact
left dialling by a killed server is pending again when its campaign starts.

Control routes: `GET /dialer` (every campaign's figures: the wallboard's JSON),
`GET /dialer/stats?campaign=NAME`, `POST /dialer/campaign` {campaign, action: start |
pause | stop}, `POST /dialer/preview` {campaign, agent}: the next due contact is
reserved and dialled for that agent (the agent's phone first, then the customer).

Scheduled callbacks (the desktop's) of a campaign's queue are dialled when due inside
the callee's window: one for an agent rings that agent first (preview), others go out
as ordinary attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import numpy as np

from acd.app import AcdApplication
from acd.campaign import CampaignRules, Verdict, contact_verdict
from acd.campaign_stats import campaign_figures
from acd.dialer_call import Prompts, outcome_of_failure
from acd.dialer_runner import HISTORY_DAYS, CampaignRunner
from acd.engine_core import CallerState
from acd.model import AgentState
from acd.pacing import outbound_agents
from ivr.player import PromptPlayer
from ivr.prompts import PromptError
from media.endpoint import tone
from pbx.api import (
    AgentStateChanged,
    Call,
    Campaign,
    CampaignEvent,
    Contact,
    ControlError,
    DialAttempt,
    DialError,
    NotFoundError,
    PbxError,
    QueueLogged,
    Switch,
)

log = logging.getLogger(__name__)

__all__ = ["Dialer"]

_DAY = 86400.0
_ACTIONS = {"start": "running", "pause": "paused", "stop": "stopped"}
_BUS_QUEUE = 50_000  # events the dialer's subscription may hold (hundreds of calls' worth)
_CONNECT_POLL = 0.1  # seconds between looks at the ACD while a handed-over call waits
_PREVIEW_RING = 30.0  # seconds an agent's phone rings for a preview call
#: What a preview agent hears while the customer's phone rings: the ring tone of ITU-T
#: E.180 as most of Europe plays it (425 Hz, 1 s on, 4 s off), played from the switch.
_RINGBACK = np.concatenate([tone(425.0, 1.0, 4000.0), np.zeros(4 * 8000, np.int16)])


class Dialer:
    """The dialer: an Application that answers no number and a Service (see the doc)."""

    def __init__(
        self,
        acd: AcdApplication,
        prompts: PromptPlayer,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.acd = acd
        self.player = prompts
        self.clock = clock
        self._switch: Switch | None = None
        self.runners: dict[str, CampaignRunner] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connects: dict[str, asyncio.Future[tuple[str, float]]] = {}
        self._handing: set[str] = set()
        self._queue_of: dict[str, str] = {}  # handed-over call -> queue

    @property
    def switch(self) -> Switch:
        if self._switch is None:
            raise PbxError("the dialer has not started")
        return self._switch

    # -- Application: the dialer answers no number ------------------------------------

    async def handles(self, number: str, switch: Switch) -> bool:
        return False

    async def run(self, call: Call, switch: Switch) -> str:  # pragma: no cover - never routed
        raise PbxError("the dialer takes no calls")

    # -- Service ------------------------------------------------------------------------

    async def start(self, switch: Switch) -> None:
        self._switch = switch
        self.spawn(self._watch(), "dialer events")
        switch.add_route("GET /dialer", self._route_all)
        switch.add_route("GET /dialer/stats", self._route_stats)
        switch.add_body_route("POST /dialer/campaign", self._route_campaign)
        switch.add_body_route("POST /dialer/preview", self._route_preview)
        switch.on_config_change(self.reload)
        stuck = await switch.scheduled_callback_store.recover()  # a killed server's
        if stuck:
            log.info("dialer: %d scheduled callbacks left dialling are pending again", stuck)
        await self.reload()

    async def close(self) -> None:
        tasks = list(self._loops.values()) + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def publish(self, event: CampaignEvent) -> None:
        self.switch.publish(event)

    async def reload(self) -> None:
        """Follow the stored campaigns: start loops of running ones, let others end."""
        for campaign in await self.switch.campaign_store.all():
            runner = self.runners.get(campaign.name)
            loop = self._loops.get(campaign.name)
            if runner is not None:
                runner.follow(campaign)
            if campaign.state == "running" and (loop is None or loop.done()):
                if runner is None:  # a resumed campaign keeps its runner: its calls, pacer
                    try:
                        runner = self.runners[campaign.name] = CampaignRunner(self, campaign)
                    except PbxError as exc:
                        log.warning("campaign %s not started: %s", campaign.name, exc)
                        continue
                self._loops[campaign.name] = asyncio.get_running_loop().create_task(
                    self._loop(runner), name=f"campaign {campaign.name}"
                )

    async def _loop(self, runner: CampaignRunner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("campaign %s: the dialer loop failed", runner.campaign.name)

    # -- what attempts need (acd.dialer_call.CallContext) ----------------------------------

    def capacity(self, queue: str, *, ours: bool) -> int:
        """Agents of `queue` free for one more call: those available or ringing (a
        ringall offer rings several for one caller) less the callers needing one
        (waiting or being offered; the dialer's own too when `ours`, with the calls it
        handed over that the ACD has not seen yet)."""
        if not queue:
            return 0
        engine = self.acd.engine
        up = sum(
            1
            for a in self.acd.queue_agents(queue)
            if a.registered
            and not a.in_use  # on a call of its own (not the queue's): not offered
            and a.state in (AgentState.AVAILABLE, AgentState.RINGING)
        )
        needing = [
            w
            for w in engine.waiting(self.clock(), queue)
            if w.state in (CallerState.WAITING, CallerState.RINGING)
            and (ours or w.call_id not in self._connects)
        ]
        unseen = 0
        if ours:
            known = engine.caller_states()
            unseen = sum(
                1 for c in self._handing if c not in known and self._queue_of.get(c) == queue
            )
        return up - len(needing) - unseen

    def agent_free(self, queue: str) -> bool:
        reserve = next(
            (
                r.campaign.inbound_reserve
                for r in self.runners.values()
                if r.campaign.queue == queue
            ),
            0,
        )
        return outbound_agents(self.capacity(queue, ours=True), reserve) > 0

    async def hand_over(self, call: Call, queue: str, number: str) -> tuple[str, float] | None:
        future: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
        self._connects[call.id] = future
        self._handing.add(call.id)
        self._queue_of[call.id] = queue
        self.spawn(self.acd.serve_caller(call, queue, number=number), f"dialer to queue {call.id}")
        ended: asyncio.Future[Any] = asyncio.ensure_future(call.wait_ended())
        try:
            while not future.done() and not ended.done():
                waits: set[asyncio.Future[Any]] = {future, ended}
                await asyncio.wait(
                    waits, timeout=_CONNECT_POLL, return_when=asyncio.FIRST_COMPLETED
                )
                if not future.done():
                    self._connected_by_engine(call.id, future)
            return future.result() if future.done() else None
        finally:
            ended.cancel()
            self._connects.pop(call.id, None)
            self._handing.discard(call.id)
            self._queue_of.pop(call.id, None)

    def _connected_by_engine(self, call_id: str, future: asyncio.Future[tuple[str, float]]) -> None:
        """The ACD holds the call connected but its CONNECT event was not seen (the bus
        dropped the subscription): take the agent from the engine, the time now (late by
        at most the poll interval, which only errs towards a longer wait)."""
        engine = self.acd.engine
        if engine.caller_state(call_id) is CallerState.CONNECTED:
            agent = next((a for a, c in engine.calls().items() if c == call_id), "")
            future.set_result((agent, self.clock()))

    async def opt_out(self, number: str, campaign: str) -> None:
        await self.switch.dnc_store.add(number, "", f"opt-out key, campaign {campaign}")
        self.publish(CampaignEvent("", campaign, "opted-out", number))

    async def campaign_prompts(self, campaign: Campaign) -> Prompts:
        """The safe-harbour message (made from the seller's name and number once, spoken
        by espeak-ng when installed) and the campaign's recorded messages."""
        name = f"campaign-{campaign.name.lower().replace('.', '-')}-harbour"[:64]
        seller = campaign.seller or "the caller"
        digits = " ".join(campaign.seller_number or campaign.caller_id)
        text = (
            f"This is a call from {seller}. Sorry, nobody is free to take your call."
            f" To call us back dial {digits}. To be put on our do not call list, press 9."
        )
        store = self.player.store
        try:
            await asyncio.to_thread(_say_once, store, name, text)
        except PromptError as exc:
            log.warning("campaign %s: the safe-harbour message is a tone: %s", campaign.name, exc)
        harbour = await self.player.audio(name)
        machine = (
            await self.player.audio(campaign.machine_message) if campaign.machine_message else None
        )
        agentless = (
            await self.player.audio(campaign.agentless_message)
            if campaign.agentless_message
            else None
        )
        return Prompts(harbour, machine, agentless)

    async def callbacks_due(self, runner: CampaignRunner, now: float) -> None:
        """Scheduled callbacks of the campaign's queue that are due: an owned one rings
        its agent first when that agent is free; others are dialled as attempts."""
        campaign = runner.campaign
        if not campaign.queue:
            return
        store = self.switch.scheduled_callback_store
        for cb in await store.due(now):
            if cb.queue != campaign.queue:
                continue
            decision = contact_verdict(runner.rules, cb.number, "", now, dnc=False)
            if decision.verdict is not Verdict.DIAL:
                continue
            if await self.switch.dnc_store.listed(cb.number, campaign.name) is not None:
                await store.set_state(cb.id, "cancelled")
                continue
            if cb.agent:
                agent = self.acd.engine.agent(cb.agent)
                if agent is None or agent.state is not AgentState.AVAILABLE:
                    continue
                await store.set_state(cb.id, "dialling")
                self.spawn(
                    self._preview_call(runner, cb.agent, cb.number, None, cb.id),
                    f"callback {cb.id}",
                )
            else:  # done when it reaches the person, else due again by the retry rules
                await store.set_state(cb.id, "dialling")
                runner.start_attempt(None, cb.number, cb.id)

    async def _preview_call(
        self,
        runner: CampaignRunner,
        agent: str,
        number: str,
        contact: Contact | None,
        callback: int | None,
    ) -> None:
        """Ring the agent (showing the customer's number), then the customer, bridge them
        until either hangs up; record the customer's attempt. When the agent does not
        answer the customer is not called: no attempt, the contact (or callback) is due
        again."""
        campaign = runner.campaign
        switch = self.switch
        tag = f"campaign {campaign.name} preview {agent}"
        try:
            agent_call = await switch.dial(
                agent, caller_id=number, timeout=_PREVIEW_RING, placed_for=tag
            )
        except PbxError as exc:
            log.info("%s: the agent did not answer (%s)", tag, exc)
            if contact is not None:
                await switch.contact_store.settle(contact.id, "pending", attempted=False)
            if callback is not None:
                await switch.scheduled_callback_store.set_state(callback, "pending")
            return
        started = self.clock()
        self.publish(CampaignEvent("", campaign.name, "dialled", number, {"agent": agent}))
        target = f"{campaign.trunk}/{number}" if campaign.trunk else number
        base = DialAttempt(
            campaign.name,
            number,
            started,
            started,
            "failed",
            contact=contact.id if contact else None,
        )
        ringback = asyncio.ensure_future(_ring_back(agent_call))  # as a phone would hear
        try:
            customer = await switch.dial(
                target,
                caller_id=campaign.caller_id,
                timeout=campaign.ring_timeout,
                placed_for=tag,
            )
        except DialError as exc:
            await _stop(ringback)
            await agent_call.hangup(0, "the customer did not answer")
            outcome = outcome_of_failure(exc.outcome.cause, exc.outcome.status)
            attempt = replace(
                base, outcome=outcome, ended_at=self.clock(), sip_status=exc.outcome.status
            )
        else:
            await _stop(ringback)
            answered = self.clock() - (customer.since_answer() or 0.0)
            try:
                bridge = switch.bridge(agent_call, customer)
                self.publish(
                    CampaignEvent(
                        customer.id,
                        campaign.name,
                        "connected",
                        number,
                        {"agent": agent, "wait": 0.0},
                    )
                )
                await bridge.wait()
            finally:
                for leg in (agent_call, customer):
                    if not leg.ended:
                        await leg.hangup(0, "preview call over")
            attempt = replace(
                base,
                outcome="connected",
                ended_at=self.clock(),
                call_id=customer.id,
                answered_at=answered,
                sip_status=200,
                agent=agent,
                connected_at=answered,
                wait_to_agent=0.0,
            )
        await runner.record(attempt, contact)
        if callback is not None:
            await switch.scheduled_callback_store.set_state(callback, "done")

    # -- events ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        """The bus's queue and agent events, for as long as the dialer runs (a busy bus
        can drop a slow subscriber: it subscribes again; hand-overs also poll the ACD)."""
        events = self.switch.events.subscribe(maxsize=_BUS_QUEUE, name="dialer")
        async for event in events.following():
            try:
                self._event(event)
            except Exception:
                log.exception("dialer: event %s not handled", event.kind)

    def _event(self, event: Any) -> None:
        if isinstance(event, QueueLogged):
            if event.event == "CONNECT":
                future = self._connects.get(event.call_id)
                if future is not None and not future.done():
                    future.set_result((event.agent, event.at))
            elif event.event in ("COMPLETEAGENT", "COMPLETECALLER"):
                talk = float(event.data.get("talk", 0.0) or 0.0)
                for runner in self.runners.values():
                    if runner.campaign.queue == event.queue:
                        runner.pacer.handled(
                            talk, self.acd.wrapup_seconds(event.agent, event.queue)
                        )
            for runner in self.runners.values():
                if runner.campaign.queue == event.queue:
                    runner.wake.set()
        elif isinstance(event, AgentStateChanged):
            for runner in self.runners.values():
                runner.wake.set()

    # -- control routes ---------------------------------------------------------------------

    async def figures(self, name: str) -> dict[str, Any]:
        """A campaign's figures now (acd.campaign_stats) with its state and calls in progress.

        Raises: NotFoundError.
        """
        switch = self.switch
        campaign = await switch.campaign_store.get(name)
        now = self.clock()
        attempts = await switch.attempt_store.of_campaign(name, now - HISTORY_DAYS * _DAY)
        counts = await switch.contact_store.counts(name)
        agents = self.acd.queue_agents(campaign.queue) if campaign.queue else []
        since = {
            a.name: max(a.state_since, now - _DAY)
            for a in agents
            if a.state is not AgentState.LOGGED_OUT
        }
        rules = CampaignRules.of(campaign)
        out = campaign_figures(
            attempts,
            rules.profile,
            now,
            amd_fp_rate=rules.amd_fp_rate,
            contacts=counts,
            agents_since=since,
        )
        runner = self.runners.get(name)
        out.update(
            name=name,
            state=campaign.state,
            mode=campaign.mode,
            queue=campaign.queue,
            in_progress=len(runner.calls) if runner else 0,
        )
        return out

    async def all_figures(self) -> list[dict[str, Any]]:
        """Every campaign's figures (`figures`), by name."""
        names = [c.name for c in await self.switch.campaign_store.all()]
        return [await self.figures(n) for n in names]

    async def _route_all(self, query: dict[str, str]) -> dict[str, Any]:
        return {"campaigns": await self.all_figures(), "now": self.clock()}

    async def _route_stats(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            return await self.figures(query.get("campaign", ""))
        except NotFoundError as exc:
            raise ControlError(str(exc)) from None

    async def _route_campaign(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, action = body.get("campaign"), body.get("action")
        if not isinstance(name, str) or action not in _ACTIONS:
            return 400, {
                "error": "campaign (a string) and action (start, pause, stop) are required"
            }
        try:
            campaign = await self.switch.campaign_store.set_state(name, _ACTIONS[str(action)])
        except NotFoundError as exc:
            return 404, {"error": str(exc)}
        except PbxError as exc:
            return 409, {"error": str(exc)}
        await self.reload()
        return 200, campaign.to_json()

    async def _route_preview(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, agent = body.get("campaign"), body.get("agent")
        if not isinstance(name, str) or not isinstance(agent, str):
            return 400, {"error": "campaign and agent are required strings"}
        runner = self.runners.get(name)
        if runner is None or runner.campaign.state != "running":
            return 409, {"error": f"campaign {name} is not running"}
        now = self.clock()
        for contact in await self.switch.contact_store.due(name, now, limit=20):
            if await runner.check(contact, now) and await self.switch.contact_store.claim(
                contact.id
            ):
                self.spawn(
                    self._preview_call(runner, agent, contact.number, contact, None),
                    f"preview {name} {contact.id}",
                )
                return 200, {"contact": contact.to_json(), "script": runner.campaign.script}
        return 404, {"error": f"campaign {name} has no contact due"}


def _say_once(store: Any, name: str, text: str) -> None:
    """Speak the prompt unless the same text was spoken before (a marker file beside)."""
    marker = store.path(name).with_suffix(".txt")
    if store.exists(name) and marker.is_file() and marker.read_text() == text:
        return
    store.say(name, text)
    marker.write_text(text)


async def _ring_back(call: Call) -> None:
    """Ring tone to `call` until cancelled or the call ends."""
    while await call.play(_RINGBACK):
        pass


async def _stop(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
