"""The console's live side: one WebSocket per open page, fed from the event bus.

An agent's page gets its own agent state, its screen pops and its call's progress; a
supervisor's page also gets the wallboard, rebuilt when a queue or agent event arrives
(no polling: a change wakes the builder, which coalesces a burst into one frame).

Screen pop: the ACD publishes each offer (`QueueOffered`: caller's number, queue, time in
queue, escalation notes) as the agent's phone is rung; the customer is matched by the
number (the stored default country, `customer_country`), the offer recorded (the agent
may now read that customer), tickets already attached to the call (an escalation)
attached to this agent too, and the pop sent before the phone is answered.

Each page is a client with a bounded queue; one that does not read fast enough is
dropped (its socket closed), never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from acd.web.calls import AgentCall, AgentCalls
from pbx.api import AgentStateChanged, CampaignEvent, QueueLogged, QueueOffered, token_hash

if TYPE_CHECKING:
    from acd.web.console import Principal, WebConsole

__all__ = ["LiveHub"]

log = logging.getLogger(__name__)

#: Messages a page may have waiting before it is dropped.
CLIENT_QUEUE = 256
#: Open pages (WebSockets) one user may have, and all users together.
MAX_PAGES_PER_USER = 10
MAX_PAGES = 1000
#: Dialled calls whose campaign record is kept for their screen pop (the oldest go).
MAX_CAMPAIGN_POPS = 1000
#: How often open pages' sessions are checked against the store (seconds).
SESSION_SWEEP = 15.0
_CONNECTED = ("CONNECT",)
_ENDED = (
    "COMPLETECALLER",
    "COMPLETEAGENT",
    "TRANSFER",
    "RINGNOANSWER",
    "RINGCANCELED",
    "ABANDON",
)


@dataclass(eq=False)
class _Client:
    who: Principal
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))

    def send(self, message: dict[str, Any]) -> bool:
        try:
            self.queue.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            return False
        return True


class LiveHub:
    """Bus events in, WebSocket messages out (see the module doc)."""

    def __init__(self, console: WebConsole) -> None:
        self.console = console
        self.calls = AgentCalls()
        self._clients: set[_Client] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._board_dirty = asyncio.Event()
        #: Dialled calls' contact records and scripts, by call id (`_campaign_event`).
        self._campaign_pops: dict[str, dict[str, Any]] = {}
        self._last_event = 0.0
        self._refresh: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        events = self.console.switch.events.subscribe(10_000, name="web console")
        self._tasks.append(asyncio.create_task(self._watch(events), name="web events"))
        self._tasks.append(asyncio.create_task(self._wallboard(), name="web wallboard"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="web session sweep"))

    async def close(self) -> None:
        for client in list(self._clients):
            self._drop(client)
        if self._refresh is not None:
            self._refresh.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def drop_session(self, token: str) -> None:
        """Close the pages of a session that logged out."""
        for client in [c for c in self._clients if c.who.token == token]:
            self._drop(client)

    def drop_hashed(self, hashed: str) -> None:
        """Close the pages of a session ended by another (its token's hash)."""
        for client in [c for c in self._clients if token_hash(c.who.token) == hashed]:
            self._drop(client)

    async def _sweep(self) -> None:
        """Close pages whose session has ended without this process seeing it (expired,
        the user's password changed or the user deleted by the CLI)."""
        while True:
            await asyncio.sleep(SESSION_SWEEP)
            store = self.console.switch.web_session_store
            for token in {c.who.token for c in self._clients}:
                if await store.get(token) is None:
                    self.drop_session(token)

    def _drop(self, client: _Client) -> None:
        self._clients.discard(client)
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(None)

    def to_agent(self, agent: str, message: dict[str, Any]) -> None:
        for client in [c for c in self._clients if c.who.user == agent]:
            if not client.send(message):
                log.info("web: a page of %s dropped (too slow)", agent)
                self._drop(client)

    def to_supervisors(self, message: dict[str, Any]) -> None:
        for client in [c for c in self._clients if c.who.supervisor]:
            if not client.send(message):
                log.info("web: a page of %s dropped (too slow)", client.who.user)
                self._drop(client)

    # -- the WebSocket ----------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        from acd.web.console import principal

        who = principal(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return web.json_response({"error": "cross-origin WebSocket refused"}, status=403)
        mine = sum(1 for c in self._clients if c.who.user == who.user)
        if mine >= MAX_PAGES_PER_USER or len(self._clients) >= MAX_PAGES:
            return web.json_response({"error": "too many open pages"}, status=429)
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await ws.prepare(request)
        client = _Client(who)
        self._clients.add(client)
        client.send({"type": "hello", "user": who.user, "role": who.role})
        self.send_agent_state(who.user, to=client)
        if who.supervisor:
            client.send(await self.wallboard_frame())

        async def pump() -> None:
            while (text := await client.queue.get()) is not None:
                await ws.send_str(text)

        async def drain() -> None:
            async for msg in ws:
                if msg.type is WSMsgType.ERROR:
                    break

        tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._clients.discard(client)
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.close()
        return ws

    # -- bus events -------------------------------------------------------------------

    async def _watch(self, events: Any) -> None:
        """The bus's events for the pages (a subscription the bus drops is taken again:
        the pages go on updating, what came between is lost)."""
        async for event in events.following():
            try:
                if isinstance(event, QueueOffered):
                    await self.pop(event)
                elif isinstance(event, AgentStateChanged):
                    self.send_agent_state(event.agent)
                elif isinstance(event, QueueLogged):
                    await self._queue_event(event)
                elif isinstance(event, CampaignEvent):
                    self._campaign_event(event)
                else:
                    continue
                self._last_event = self.console.clock()
                self._board_dirty.set()
            except Exception:
                log.exception("web: event %s not handled", event.kind)

    def send_agent_state(self, agent: str, to: _Client | None = None) -> None:
        row = self.console.acd.agent_status(agent)
        if row is None:
            return
        now = self.console.clock()
        current = self.calls.get(agent)
        wrapup_left = None
        if row["state"] == "wrap-up" and current is not None:
            seconds = self.console.acd.wrapup_seconds(agent, current.queue)
            wrapup_left = max(0.0, float(row["since"]) + seconds - now)
        message = {
            "type": "agent",
            "agent": row,
            "call": current.to_json(now) if current is not None else None,
            "wrapup_left": wrapup_left,
        }
        if to is not None:
            to.send(message)
        else:
            self.to_agent(agent, message)

    async def _queue_event(self, event: QueueLogged) -> None:
        if not event.agent or not event.call_id:
            return
        now = self.console.clock()
        changed: AgentCall | None = None
        if event.event in _CONNECTED:
            changed = self.calls.connected(event.agent, event.call_id, now)
            what = "answer"
        elif event.event in _ENDED:
            changed = self.calls.ended(event.agent, event.call_id, now)
            what = "end"
        if changed is not None:
            self.to_agent(event.agent, {"type": "call", "call": changed.to_json(now)})
            customer = None
            if changed.customer is not None:
                with contextlib.suppress(Exception):  # deleted meanwhile: no customer
                    customer = await self.console.switch.customer_store.get(changed.customer)
            self.console.notify(what, event.agent, changed.to_json(now), customer)

    def _campaign_event(self, event: CampaignEvent) -> None:
        """Keep a dialled call's contact record and script (its "offered" event) for the
        screen pop of its queue offer, which comes next; forget it when the call ends."""
        if event.event == "offered":
            fields = event.data.items()
            record = {k.removeprefix("record."): str(v) for k, v in fields if k[:7] == "record."}
            self._campaign_pops[event.call_id] = {
                "campaign": event.campaign,
                "script": str(event.data.get("script") or ""),
                "record": record,
            }
            while len(self._campaign_pops) > MAX_CAMPAIGN_POPS:
                del self._campaign_pops[next(iter(self._campaign_pops))]
        elif event.event == "ended":
            self._campaign_pops.pop(event.call_id, None)

    async def pop(self, offer: QueueOffered) -> None:
        """The screen pop of an offer, sent as the agent's phone rings (see the module
        doc)."""
        from acd.web.api import customer_view

        console = self.console
        switch = console.switch
        agent, call_id = offer.agent, offer.call_id
        now = console.clock()
        country = await switch.setting("customer_country")
        customer = await switch.customer_store.for_caller(offer.caller, country)
        if customer is not None:
            await switch.customer_store.offered(customer.id, agent, call_id, offer.queue, now)
        call = AgentCall(
            call_id,
            offer.caller,
            offer.queue,
            now - offer.wait,
            now,
            customer.id if customer is not None else None,
            ivr=offer.ivr,
        )
        if not self.calls.offered(agent, call):
            return
        tickets = await switch.ticket_store.for_call(call_id)
        for ticket in tickets:  # an escalated call: its specialist may read its tickets
            await switch.ticket_store.add_call(ticket.id, call_id, agent)
        # Articles tagged with the queue, or with a menu the caller went through.
        menus = [step.split(" ")[0] for step in offer.ivr.split(" > ") if step and step != "..."]
        suggested = await switch.kb_store.tagged([offer.queue, *menus])
        self.to_agent(
            agent,
            {
                "type": "pop",
                "call": call.to_json(now),
                "customer": (await customer_view(console, customer, call_id) if customer else None),
                "tickets": [(await switch.ticket_store.get(t.id)).to_json(now) for t in tickets],
                "notes": [line for line in offer.notes.splitlines() if line.strip()],
                "callback": offer.callback,
                "suggested": [{"id": a.id, "title": a.title} for a in suggested],
                "campaign": self._campaign_pops.get(call_id),
            },
        )
        console.notify("offer", agent, call.to_json(now), customer)
        known = "known" if customer is not None else "new"
        log.info("web: screen pop of %s for %s (%s customer)", call_id, agent, known)

    async def ticket_changed(self, id_: int) -> None:
        """Send a changed ticket to the open pages of everyone on it (its owner and the
        agents who took its calls), so a specialist sees the escalation's note."""
        store = self.console.switch.ticket_store
        ticket = await store.get(id_)
        view = ticket.to_json(self.console.clock())
        for agent in {ticket.agent, *(a for _, a in ticket.calls)}:
            self.to_agent(agent, {"type": "ticket", "ticket": view})

    # -- the wallboard ------------------------------------------------------------------

    async def _wallboard(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._board_dirty.wait()
            self._board_dirty.clear()
            if not any(c.who.supervisor for c in self._clients):
                continue
            self.to_supervisors(await self.wallboard_frame())
            # The day's figures were cached from before the last event: one more frame
            # once they may be computed again.
            fresh = self.console.figures.fresh_at()
            if fresh is not None and fresh - self.console.figures.every < self._last_event:
                if self._refresh is not None:
                    self._refresh.cancel()
                delay = max(0.0, fresh - self.console.clock()) + 0.05
                self._refresh = loop.call_later(delay, self._board_dirty.set)

    async def wallboard_frame(self) -> dict[str, Any]:
        from acd.web.api import wallboard

        return {"type": "wallboard", **await wallboard(self.console)}
