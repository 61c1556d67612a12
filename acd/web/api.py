"""The console's JSON API (`/api/...`), behind the session guard of acd.web.console.

Who may read what: an agent reads their own state and call, the customers offered to
them (`customer_offers`), the tickets they own or took a call of, the knowledge base;
supervisors and admins read everything and write articles. Anything else is 403.
Errors are `{"error": "..."}`: 400 bad input, 403 not yours, 404 no such thing, 409 a
change the ACD refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.web.console import principal
from acd.web.markdown import render
from pbx.api import (
    CUSTOMER_FIELDS,
    ConfigError,
    Customer,
    CustomerFields,
    NotFoundError,
    PbxError,
    normalise_number,
)

if TYPE_CHECKING:
    from acd.web.console import Principal, WebConsole

__all__ = ["add_routes", "customer_view", "wallboard"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(reason="the body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body is not a JSON object")
    return body


def _str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{key} must be a string")
    return value


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise web.HTTPBadRequest(reason=f"{key} must be a number")
    return value


def _id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 12:
        raise web.HTTPNotFound()
    return int(text)


#: The settings key of the CRM page template (`pbx customer crm-url`).
CRM_URL_KEY = "crm_url_template"
_CRM_FIELDS = ("id", "number", "external_id")


def check_crm_template(template: str) -> str:
    """Raises: ConfigError unless `template` is an http(s) URL naming only the fields
    {id}, {number}, {external_id}."""
    import string

    template = template.strip()
    if not template.startswith(("https://", "http://")) or len(template) > 1000:
        raise ConfigError(f"CRM link {template!r}: an http:// or https:// URL")
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"CRM link {template!r}: {exc}") from None
    bad = [n for n in names if n not in _CRM_FIELDS]
    if bad:
        raise ConfigError(
            f"CRM link: unknown field {{{bad[0]}}}; use {{id}}, {{number}}, {{external_id}}"
        )
    return template


def crm_url(template: str | None, customer: Customer) -> str | None:
    """The CRM page of `customer` (each field URL-encoded), None without a template."""
    from urllib.parse import quote

    if not template:
        return None
    values = {f: quote(str(getattr(customer, f)), safe="") for f in _CRM_FIELDS}
    try:
        return template.format(**values)
    except (KeyError, ValueError, IndexError):
        return None


async def customer_view(
    console: WebConsole, customer: Customer, current: str | None = None
) -> dict[str, Any]:
    """A customer with its history: earlier calls (one line a call, with the agent it was
    last offered to; not the `current` one), tickets, dispositions."""
    switch = console.switch
    now = console.clock()
    calls: dict[str, dict[str, Any]] = {}
    for o in await switch.customer_store.offers(customer.id):  # newest first
        if o.call_id != current and o.call_id not in calls:
            calls[o.call_id] = {"agent": o.agent, "call_id": o.call_id, "queue": o.queue,
                                "at": o.at}  # fmt: skip
    return {
        **customer.to_json(),
        "crm_url": crm_url(await switch.setting(CRM_URL_KEY), customer),
        "calls": list(calls.values()),
        "tickets": [t.to_json(now) for t in await switch.ticket_store.for_customer(customer.id)],
        "dispositions": [
            d.to_json() for d in await switch.disposition_store.for_customer(customer.id)
        ],
    }


async def wallboard(console: WebConsole) -> dict[str, Any]:
    """The ACD's live snapshot with each agent's time in state, each queue's figures of
    today and its alarms, and the outbound campaigns' figures."""
    from acd.web.figures import alarms

    snapshot = console.acd.snapshot()
    now = float(snapshot.get("now", console.clock()))
    for agent in snapshot["agents"]:
        agent["in_state"] = max(0.0, now - float(agent.get("since") or now))
    today = await console.figures.today()
    thresholds = await console.figures.thresholds()
    target = await console.figures.sl_target()
    for queue in snapshot["queues"]:
        name = queue["name"]
        queue["today"] = today.get(name)
        queue["threshold"] = thresholds.get(name, 20.0)
        queue["alarms"] = alarms(queue, today.get(name), queue["threshold"], target)
    snapshot["sl_target"] = target
    snapshot["campaigns"] = console.figures.campaigns()
    return snapshot


class Api:
    def __init__(self, console: WebConsole) -> None:
        self.console = console

    @property
    def switch(self) -> Any:
        return self.console.switch

    async def _may_read_customer(self, who: Principal, id_: int) -> Customer:
        customer = await self.switch.customer_store.get(id_)  # NotFoundError first
        if not who.supervisor and not await self.switch.customer_store.was_offered(id_, who.user):
            raise web.HTTPForbidden(reason="this customer was not offered to you")
        return customer  # type: ignore[no-any-return]

    async def _may_read_ticket(self, who: Principal, id_: int) -> None:
        await self.switch.ticket_store.get(id_)  # NotFoundError first
        if not who.supervisor and not await self.switch.ticket_store.involves(id_, who.user):
            raise web.HTTPForbidden(reason="this ticket is not yours")

    # -- me, my agent state, my call ---------------------------------------------------

    async def me(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        call = self.console.live.calls.get(who.user)
        return web.json_response(
            {
                "user": who.user,
                "role": who.role,
                "csrf": who.csrf,
                "agent": self.console.acd.agent_status(who.user),
                "all_queues": [q["name"] for q in self.console.acd.snapshot()["queues"]],
                "call": call.to_json(self.console.clock()) if call is not None else None,
            }
        )

    async def agent(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        body = await _body(request)
        action = _str(body, "action")
        reason = body.get("reason") or None
        queue = body.get("queue") or None
        if not isinstance(reason, str | None) or not isinstance(queue, str | None):
            return _error(400, "reason and queue must be strings")
        try:
            row = await self.console.acd.agent_command(who.user, action, reason=reason, queue=queue)
        except NotFoundError as exc:
            return _error(404, str(exc))
        except PbxError as exc:
            return _error(409, str(exc))
        return web.json_response(row)

    async def escalate(self, request: web.Request) -> web.StreamResponse:
        """Send my current call to a specialist queue and/or skill; the ticket named goes
        with it: attached to the call, state escalated, a note saying where and why, all
        stored before the specialist's phone rings (their pop shows it). An escalation
        the ACD refuses puts the ticket back in its state, with a note saying so."""
        who = principal(request)
        body = await _body(request)
        queue = body.get("queue") or None
        skill = body.get("skill") or None
        note = body.get("note") or None
        level = _opt_int(body, "level")
        ticket = _opt_int(body, "ticket")
        if not all(isinstance(v, str | None) for v in (queue, skill, note)):
            return _error(400, "queue, skill and note must be strings")
        call = self.console.live.calls.get(who.user)
        if call is None or call.connected is None or call.ended is not None:
            return _error(409, f"{who.user} is on no queue call")
        store = self.switch.ticket_store
        before = None
        if ticket is not None:
            await self._may_read_ticket(who, ticket)
            before = (await store.get(ticket)).state
            await store.add_call(ticket, call.call_id, who.user)
            await store.set_state(ticket, "escalated")
            where = " / ".join(x for x in (queue or call.queue, skill or "") if x)
            text = f"escalated to {where}" + (f": {note}" if note else "")
            await store.add_note(ticket, who.user, text)
        try:
            moved = await self.console.acd.escalate(
                who.user, queue=queue, skill=skill, level=level, note=note
            )
        except PbxError as exc:
            if ticket is not None and before is not None:
                await store.set_state(ticket, before)
                await store.add_note(ticket, who.user, f"escalation refused: {exc}")
                await self.console.live.ticket_changed(ticket)
            return _error(404 if isinstance(exc, NotFoundError) else 409, str(exc))
        if ticket is not None:
            await self.console.live.ticket_changed(ticket)
        return web.json_response(moved)

    async def transfer(self, request: web.Request) -> web.StreamResponse:
        """Transfer my current call out of the queues: an extension or number, vm:BOX,
        trunk:NAME/NUMBER (a blind transfer; I go to wrap-up)."""
        who = principal(request)
        target = (await _body(request)).get("target")
        if not isinstance(target, str):
            return _error(400, "target must be a string")
        try:
            done = await self.console.acd.transfer(who.user, target.strip())
        except PbxError as exc:
            return _error(409, str(exc))
        return web.json_response(done)

    # -- customers ----------------------------------------------------------------------

    async def customer(self, request: web.Request) -> web.StreamResponse:
        customer = await self._may_read_customer(principal(request), _id(request))
        return web.json_response(await customer_view(self.console, customer))

    async def customer_update(self, request: web.Request) -> web.StreamResponse:
        id_ = _id(request)
        await self._may_read_customer(principal(request), id_)
        body = await _body(request)
        changes = {k: _str(body, k) for k in body if k in CUSTOMER_FIELDS}
        if set(body) - set(CUSTOMER_FIELDS):
            return _error(
                400, f"unknown fields: {', '.join(sorted(set(body) - set(CUSTOMER_FIELDS)))}"
            )
        if "number" in changes:
            changes["number"] = normalise_number(changes["number"], await self._country())
        customer = await self.switch.customer_store.update(id_, changes)
        return web.json_response(await customer_view(self.console, customer))

    async def customer_create(self, request: web.Request) -> web.StreamResponse:
        """The new-customer form (pre-filled with the caller's number); the agent's
        current call, if any, counts as the offer that lets them read it."""
        who = principal(request)
        body = await _body(request)
        values = {k: _str(body, k, "") for k in CUSTOMER_FIELDS}
        values["number"] = normalise_number(values["number"], await self._country())
        store = self.switch.customer_store
        if await store.by_number(values["number"]) is not None:
            return _error(409, f"a customer has the number {values['number']} already")
        customer = await store.add(CustomerFields(**values))
        call = self.console.live.calls.get(who.user)
        call_id, queue = (call.call_id, call.queue) if call is not None else ("web", "")
        await store.offered(customer.id, who.user, call_id, queue, self.console.clock())
        return web.json_response(await customer_view(self.console, customer), status=201)

    async def customers(self, request: web.Request) -> web.StreamResponse:
        """Search (supervisors: every customer; agents: those offered to them)."""
        who = principal(request)
        text = request.query.get("q", "")[:100]
        store = self.switch.customer_store
        found = await store.search(text, 200)
        if not who.supervisor:
            allowed = await store.offered_to(who.user, [c.id for c in found])
            found = [c for c in found if c.id in allowed]
        return web.json_response({"customers": [c.to_json() for c in found[:50]]})

    async def customers_csv(self, request: web.Request) -> web.StreamResponse:
        """Every customer as CSV (what `pbx customer import` reads); supervisors."""
        from pbx.api import format_customers_csv

        if not principal(request).supervisor:
            return _error(403, "the export is for supervisors")
        return web.Response(
            text=format_customers_csv(await self.switch.customer_store.all()),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
        )

    async def customer_call(self, request: web.Request) -> web.StreamResponse:
        """Click-to-call from a record: my phone rings, then the customer's number."""
        who = principal(request)
        customer = await self._may_read_customer(who, _id(request))
        if not self.console.click_to_call(who.user, customer.number):
            return _error(409, "a click-to-call of yours is in progress already")
        return web.json_response({"from": who.user, "to": customer.number}, status=202)

    # -- callbacks scheduled for a date and time --------------------------------------

    async def callbacks(self, request: web.Request) -> web.StreamResponse:
        found = await self.switch.scheduled_callback_store.pending_for(principal(request).user)
        return web.json_response({"callbacks": [c.to_json() for c in found]})

    async def callback_add(self, request: web.Request) -> web.StreamResponse:
        """Schedule a callback: `due` (Unix time), `for` "me" or "anyone", `note`; the
        number is the given customer's, else my current call's."""
        who = principal(request)
        body = await _body(request)
        due = body.get("due")
        if not isinstance(due, int | float) or isinstance(due, bool) or not math.isfinite(due):
            return _error(400, "due must be a Unix time")
        target = _str(body, "for", "me")
        if target not in ("me", "anyone"):
            return _error(400, 'for is "me" or "anyone"')
        customer = _opt_int(body, "customer")
        ticket = _opt_int(body, "ticket")
        call = self.console.live.calls.get(who.user)
        number, queue = "", ""
        if customer is not None:
            number = (await self._may_read_customer(who, customer)).number
        if call is not None:
            number = number or call.number
            queue = call.queue
            customer = customer if customer is not None else call.customer
        if ticket is not None:
            await self._may_read_ticket(who, ticket)
        if not number:
            return _error(400, "no number to call back: no customer and no call")
        scheduled = await self.switch.scheduled_callback_store.add(
            number,
            float(due),
            who.user,
            agent=who.user if target == "me" else None,
            queue=queue,
            customer=customer,
            ticket=ticket,
            note=_str(body, "note", ""),
        )
        return web.json_response(scheduled.to_json(), status=201)

    async def callback_cancel(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        store = self.switch.scheduled_callback_store
        found = await store.get(_id(request))
        if not who.supervisor and who.user not in (found.agent, found.created_by):
            return _error(403, "this callback is not yours")
        await store.set_state(found.id, "cancelled")
        return web.json_response((await store.get(found.id)).to_json())

    async def _country(self) -> str:
        return str(await self.switch.setting("customer_country") or "+1")

    # -- tickets -----------------------------------------------------------------------

    async def tickets(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        now = self.console.clock()
        found = await self.switch.ticket_store.for_agent(who.user)
        return web.json_response({"tickets": [t.to_json(now) for t in found]})

    async def ticket_open(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        body = await _body(request)
        customer = _opt_int(body, "customer")
        call_id = _str(body, "call_id", "")
        if customer is not None:
            await self._may_read_customer(who, customer)
        queue = ""
        if call_id:
            if not who.supervisor and not self.console.live.calls.took(who.user, call_id):
                return _error(403, "this call is not yours")
            call = self.console.live.calls.get(who.user)
            queue = call.queue if call is not None and call.call_id == call_id else ""
        ticket = await self.switch.ticket_store.open(
            who.user, _str(body, "subject"), customer=customer, queue=queue, call_id=call_id
        )
        return web.json_response(ticket.to_json(self.console.clock()), status=201)

    async def ticket(self, request: web.Request) -> web.StreamResponse:
        id_ = _id(request)
        await self._may_read_ticket(principal(request), id_)
        ticket = await self.switch.ticket_store.get(id_)
        view = ticket.to_json(self.console.clock())
        view["linked"] = [
            {"id": a, "title": (await self.switch.kb_store.get(a)).title} for a in ticket.articles
        ]
        return web.json_response(view)

    async def ticket_change(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        id_ = _id(request)
        await self._may_read_ticket(who, id_)
        body = await _body(request)
        store = self.switch.ticket_store
        what = request.match_info["what"]
        if what == "state":
            await store.set_state(id_, _str(body, "state"))
        elif what == "notes":
            await store.add_note(id_, who.user, _str(body, "body"))
        elif what == "articles":
            article = _opt_int(body, "article")
            if article is None:
                return _error(400, "article is required")
            await store.link_article(id_, article)
        else:
            raise web.HTTPNotFound()
        await self.console.live.ticket_changed(id_)
        return web.json_response((await store.get(id_)).to_json(self.console.clock()))

    # -- knowledge base ----------------------------------------------------------------

    async def kb_search(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("q", "")[:200]
        queue = request.query.get("suggest", "")[:64]
        store = self.switch.kb_store
        found = await (store.search(text) if text else store.tagged([queue]))
        return web.json_response(
            {"articles": [{"id": a.id, "title": a.title, "tags": list(a.tags)} for a in found]}
        )

    async def kb_article(self, request: web.Request) -> web.StreamResponse:
        article = await self.switch.kb_store.get(_id(request))
        return web.json_response({**article.to_json(), "html": render(article.body)})

    async def kb_write(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        if not who.supervisor:
            return _error(403, "only supervisors and admins write articles")
        body = await _body(request)
        tags = body.get("tags", [])
        if isinstance(tags, str):
            tags = tags.split(",")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return _error(400, "tags must be a list of strings")
        store = self.switch.kb_store
        if "id" in request.match_info:
            article = await store.update(
                _id(request), _str(body, "title"), _str(body, "body"), tags, who.user
            )
            created = False
        else:
            article, created = await store.put(
                _str(body, "title"), _str(body, "body"), tags, who.user
            )
        return web.json_response(
            {**article.to_json(), "html": render(article.body)}, status=201 if created else 200
        )

    # -- dispositions, wallboard -----------------------------------------------------------

    async def disposition(self, request: web.Request) -> web.StreamResponse:
        who = principal(request)
        body = await _body(request)
        call_id = _str(body, "call_id")
        live = self.console.live
        if not who.supervisor and not live.calls.took(who.user, call_id):
            return _error(403, "this call is not yours")
        call = live.calls.get(who.user)
        customer = _opt_int(body, "customer")
        ticket = _opt_int(body, "ticket")
        if customer is None and call is not None and call.call_id == call_id:
            customer = call.customer
        if ticket is not None:
            await self._may_read_ticket(who, ticket)
        stored = await self.switch.disposition_store.add(
            call_id,
            who.user,
            _str(body, "code"),
            queue=call.queue if call is not None and call.call_id == call_id else "",
            note=_str(body, "note", ""),
            customer=customer,
            ticket=ticket,
        )
        return web.json_response(stored.to_json(), status=201)

    async def wallboard(self, request: web.Request) -> web.StreamResponse:
        if not principal(request).supervisor:
            return _error(403, "the wallboard is for supervisors")
        return web.json_response(await wallboard(self.console))


def _period(request: web.Request, now: float) -> tuple[float, float, float]:
    from acd.web.figures import local_midnight

    try:
        since_text = request.query.get("since", "today")
        since = local_midnight(now) if since_text == "today" else float(since_text)
        interval = float(request.query.get("interval", "3600"))
    except ValueError:
        since = interval = math.nan
    if not (math.isfinite(since) and math.isfinite(interval)):
        raise web.HTTPBadRequest(reason="since is 'today' or a Unix time; interval in seconds")
    return since, now, interval


class Supervising:
    """The supervisor's routes: figures by interval (JSON, CSV) and listen/whisper/barge."""

    def __init__(self, console: WebConsole) -> None:
        self.console = console

    def _check(self, request: web.Request) -> Principal:
        who = principal(request)
        if not who.supervisor:
            raise web.HTTPForbidden(reason="for supervisors")
        return who

    async def report(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        since, until, interval = _period(request, self.console.clock())
        rows = await self.console.figures.intervals(since, until, interval)
        return web.json_response({"since": since, "interval": interval, "rows": rows})

    async def report_csv(self, request: web.Request) -> web.StreamResponse:
        from acd.web.figures import intervals_csv

        self._check(request)
        since, until, interval = _period(request, self.console.clock())
        rows = await self.console.figures.intervals(since, until, interval)
        return web.Response(
            text=intervals_csv(rows),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="queues.csv"'},
        )

    async def supervise(self, request: web.Request) -> web.StreamResponse:
        who = self._check(request)
        body = await _body(request)
        try:
            result = await self.console.acd.supervise(
                _str(body, "agent"), _str(body, "mode"), who.user
            )
        except NotFoundError as exc:
            return _error(404, str(exc))
        except PbxError as exc:
            return _error(409, str(exc))
        return web.json_response(result)


def _errors(handler: Handler) -> Handler:
    """The store's errors as JSON answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotFoundError as exc:
            return _error(404, str(exc))
        except ConfigError as exc:
            return _error(400, str(exc))

    return wrapped


def add_routes(app: web.Application, console: WebConsole) -> None:
    api = Api(console)
    boss = Supervising(console)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/api/report", boss.report),
        ("GET", "/api/report.csv", boss.report_csv),
        ("POST", "/api/supervise", boss.supervise),
        ("GET", "/api/me", api.me),
        ("POST", "/api/agent", api.agent),
        ("POST", "/api/escalate", api.escalate),
        ("POST", "/api/transfer", api.transfer),
        ("POST", "/api/customers", api.customer_create),
        ("GET", "/api/customers", api.customers),
        ("GET", "/api/customers.csv", api.customers_csv),
        ("GET", "/api/customers/{id}", api.customer),
        ("PUT", "/api/customers/{id}", api.customer_update),
        ("POST", "/api/customers/{id}/call", api.customer_call),
        ("GET", "/api/callbacks", api.callbacks),
        ("POST", "/api/callbacks", api.callback_add),
        ("POST", "/api/callbacks/{id}/cancel", api.callback_cancel),
        ("GET", "/api/tickets", api.tickets),
        ("POST", "/api/tickets", api.ticket_open),
        ("GET", "/api/tickets/{id}", api.ticket),
        ("POST", "/api/tickets/{id}/{what}", api.ticket_change),
        ("GET", "/api/kb", api.kb_search),
        ("POST", "/api/kb", api.kb_write),
        ("GET", "/api/kb/{id}", api.kb_article),
        ("PUT", "/api/kb/{id}", api.kb_write),
        ("POST", "/api/dispositions", api.disposition),
        ("GET", "/api/wallboard", api.wallboard),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _errors(handler))
