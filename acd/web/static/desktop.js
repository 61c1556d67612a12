// The agent desktop: queue login/pause/ready, the current call, the screen pop, the
// ticket with its timer, the knowledge base, the disposition. Text only into the page;
// article bodies come as HTML the server rendered from Markdown with raw HTML disabled.
"use strict";

const desk = { call: null, customer: null, ticket: null, callSeen: 0 };

function showAgent(agent) {
  if (!agent) {
    pbx.text("#state", "not an agent");
    return;
  }
  pbx.text("#state", agent.state);
  pbx.$("#state").dataset.state = agent.state;
  pbx.text("#reason", agent.state === "paused" ? agent.reason || "" : "");
  pbx.text("#queues", (agent.queues || []).join(", ") || "-");
}

function showCall(call) {
  desk.call = call;
  desk.callSeen = Date.now() / 1000;
  pbx.text("#call-number", call ? call.number : "-");
  pbx.text("#call-queue", call ? call.queue + (call.ivr ? " / " + call.ivr : "") : "-");
  pbx.text("#call-state", call ? call.state : "-");
  tick();
}

function list(selector, items, line) {
  const node = pbx.$(selector);
  node.replaceChildren(...items.map((item) => pbx.el("li", line(item))));
  if (!items.length) {
    node.replaceChildren(pbx.el("li", "none", "muted"));
  }
}

function showCustomer(customer, number) {
  desk.customer = customer;
  pbx.show("#pop-empty", false);
  pbx.show("#customer", Boolean(customer));
  pbx.show("#new-customer", !customer);
  if (!customer) {
    pbx.$("#nc-number").value = number || "";
    return;
  }
  pbx.text("#pop-name", customer.name);
  pbx.text("#pop-company", customer.company);
  pbx.text("#pop-number", customer.number);
  pbx.text("#pop-notes", customer.notes);
  const crm = pbx.$("#pop-crm");
  const safe = typeof customer.crm_url === "string" && /^https?:\/\//.test(customer.crm_url);
  crm.hidden = !safe;
  crm.href = safe ? customer.crm_url : "#";
  list("#pop-calls", customer.calls || [], (c) => pbx.when(c.at) + " " + c.queue + " with " + c.agent);
  list("#pop-tickets", customer.tickets || [], (t) => "#" + t.id + " " + t.subject + " [" + t.state + "]");
  list("#pop-dispositions", customer.dispositions || [], (d) => pbx.when(d.at) + " " + d.code + (d.note ? ": " + d.note : ""));
}

// A dialled call's campaign: its script for the agent and the contact's record (the
// list's extra columns), as text.
function showCampaign(campaign) {
  pbx.show("#pop-campaign", Boolean(campaign));
  if (!campaign) {
    return;
  }
  pbx.text("#pop-campaign-name", campaign.campaign);
  pbx.text("#pop-script", campaign.script);
  const facts = [];
  for (const [name, value] of Object.entries(campaign.record)) {
    facts.push(pbx.el("dt", name), pbx.el("dd", value));
  }
  pbx.$("#pop-record").replaceChildren(...facts);
}

function showTicket(ticket) {
  desk.ticket = ticket;
  desk.ticketSeen = Date.now() / 1000;
  pbx.show("#ticket", Boolean(ticket));
  if (!ticket) {
    return;
  }
  pbx.text("#ticket-id", ticket.id);
  pbx.text("#ticket-title", ticket.subject);
  pbx.text("#ticket-target", pbx.clock(ticket.target));
  pbx.$("#ticket-state").value = ticket.state;
  list("#ticket-notes", ticket.notes || [], (n) => n.author + ": " + n.body);
  const linked = ticket.linked || (ticket.articles || []).map((id) => ({ id, title: "article " + id }));
  list("#ticket-articles", linked, (a) => a.title);
  tick();
}

function tick() {
  const now = Date.now() / 1000;
  const call = desk.call;
  if (call) {
    const since = now - desk.callSeen;
    const running = call.state !== "ended";
    pbx.text("#call-wait", pbx.clock(call.state === "ringing" ? call.wait + since : call.wait));
    pbx.text("#call-duration", pbx.clock(call.state === "connected" && running ? call.duration + since : call.duration));
  }
  const ticket = desk.ticket;
  if (ticket) {
    const elapsed = ticket.solved_at ? ticket.elapsed : ticket.elapsed + (now - desk.ticketSeen);
    pbx.text("#ticket-timer", pbx.clock(elapsed));
    pbx.$("#ticket-timer").className = elapsed > ticket.target ? "late" : "";
  }
  if (desk.wrapupEnd) {
    const left = desk.wrapupEnd - now;
    pbx.text("#wrapup-left", pbx.clock(left));
    if (left <= 0) {
      desk.wrapupEnd = null;
    }
  }
}

async function act(action, extra) {
  pbx.error("");
  try {
    showAgent(await pbx.api("POST", "/api/agent", Object.assign({ action }, extra || {})));
  } catch (err) {
    pbx.error(err.message);
  }
}

async function openTicket(event) {
  event.preventDefault();
  const body = { subject: pbx.$("#ticket-subject").value };
  if (desk.call) {
    body.call_id = desk.call.call_id;
  }
  if (desk.customer) {
    body.customer = desk.customer.id;
  }
  try {
    showTicket(await pbx.api("POST", "/api/tickets", body));
    await showMyTickets();
  } catch (err) {
    pbx.error(err.message);
  }
}

async function ticketChange(what, body) {
  try {
    showTicket(await pbx.api("POST", "/api/tickets/" + desk.ticket.id + "/" + what, body));
    showTicket(await pbx.api("GET", "/api/tickets/" + desk.ticket.id));
  } catch (err) {
    pbx.error(err.message);
  }
}

async function showArticle(id) {
  const article = await pbx.api("GET", "/api/kb/" + id);
  pbx.text("#kb-title", article.title);
  pbx.$("#kb-body").innerHTML = article.html; // rendered server-side, raw HTML disabled
  pbx.show("#kb-article", true);
}

function showArticles(articles) {
  const node = pbx.$("#kb-results");
  node.replaceChildren(
    ...articles.map((a) => {
      const item = pbx.el("li");
      const open = pbx.el("a", a.title, "kb-open");
      open.href = "#";
      open.addEventListener("click", (e) => {
        e.preventDefault();
        showArticle(a.id).catch((err) => pbx.error(err.message));
      });
      const link = pbx.el("button", "Link to ticket", "kb-link");
      link.type = "button";
      link.dataset.id = a.id;
      link.addEventListener("click", () => {
        if (!desk.ticket) {
          pbx.error("open a ticket first");
          return;
        }
        ticketChange("articles", { article: a.id });
      });
      item.append(open, " ", link);
      return item;
    }),
  );
  if (!articles.length) {
    node.replaceChildren(pbx.el("li", "no article matches", "muted"));
  }
}

async function search(event) {
  event.preventDefault();
  const q = pbx.$("#kb-q").value;
  showArticles((await pbx.api("GET", "/api/kb?q=" + encodeURIComponent(q))).articles);
}

async function saveCustomer(event) {
  event.preventDefault();
  const body = {};
  for (const name of ["number", "name", "company", "notes"]) {
    body[name] = pbx.$("#nc-" + name).value;
  }
  try {
    showCustomer(await pbx.api("POST", "/api/customers", body));
  } catch (err) {
    pbx.error(err.message);
  }
}

async function transfer(event) {
  event.preventDefault();
  const target = pbx.$("#xfer-target").value.trim();
  try {
    const done = await pbx.api("POST", "/api/transfer", { target: target });
    pbx.text("#xfer-status", "transferred to " + done.target);
  } catch (err) {
    pbx.error(err.message);
  }
}

async function escalate(event) {
  event.preventDefault();
  const body = {
    queue: pbx.$("#esc-queue").value,
    skill: pbx.$("#esc-skill").value,
    note: pbx.$("#esc-note").value,
  };
  if (desk.ticket) {
    body.ticket = desk.ticket.id;
  }
  try {
    const moved = await pbx.api("POST", "/api/escalate", body);
    pbx.text("#esc-status", "escalated to " + moved.queue);
    if (desk.ticket) {
      showTicket(await pbx.api("GET", "/api/tickets/" + desk.ticket.id));
    }
  } catch (err) {
    pbx.error(err.message);
  }
}

async function showMyTickets() {
  const data = await pbx.api("GET", "/api/tickets");
  const node = pbx.$("#my-tickets");
  node.replaceChildren(
    ...data.tickets
      .filter((t) => t.state !== "solved")
      .map((t) => {
        const item = pbx.el("li");
        const open = pbx.el("a", "#" + t.id + " " + t.subject + " [" + t.state + "]", "ticket-open");
        open.href = "#";
        open.addEventListener("click", async (e) => {
          e.preventDefault();
          showTicket(await pbx.api("GET", "/api/tickets/" + t.id));
        });
        item.append(open);
        return item;
      }),
  );
}

async function writeArticle(event) {
  event.preventDefault();
  const body = { title: pbx.$("#kw-title").value, tags: pbx.$("#kw-tags").value, body: pbx.$("#kw-body").value };
  try {
    const article = await pbx.api("POST", "/api/kb", body);
    await showArticle(article.id);
  } catch (err) {
    pbx.error(err.message);
  }
}

async function showCallbacks() {
  const data = await pbx.api("GET", "/api/callbacks");
  const node = pbx.$("#cb-list");
  node.replaceChildren(
    ...data.callbacks.map((c) => {
      const item = pbx.el("li", pbx.when(c.due) + " " + c.number + " (" + (c.agent || "anyone") + ") " + c.note + " ");
      const cancel = pbx.el("button", "Cancel", "cb-cancel");
      cancel.type = "button";
      cancel.addEventListener("click", async () => {
        await pbx.api("POST", "/api/callbacks/" + c.id + "/cancel", {});
        await showCallbacks();
      });
      item.append(cancel);
      return item;
    }),
  );
}

async function scheduleCallback(event) {
  event.preventDefault();
  const when = pbx.$("#cb-when").value; // local date and time
  const body = { due: new Date(when).getTime() / 1000, for: pbx.$("#cb-for").value, note: pbx.$("#cb-note").value };
  if (desk.customer) {
    body.customer = desk.customer.id;
  }
  if (desk.ticket) {
    body.ticket = desk.ticket.id;
  }
  try {
    await pbx.api("POST", "/api/callbacks", body);
    await showCallbacks();
  } catch (err) {
    pbx.error(err.message);
  }
}

async function callCustomer() {
  if (!desk.customer) {
    return;
  }
  try {
    await pbx.api("POST", "/api/customers/" + desk.customer.id + "/call", {});
    pbx.text("#call-state", "dialling your phone");
  } catch (err) {
    pbx.error(err.message);
  }
}

async function dispose(event) {
  event.preventDefault();
  if (!desk.call) {
    pbx.error("no call to dispose of");
    return;
  }
  const body = { call_id: desk.call.call_id, code: pbx.$("#disp-code").value, note: pbx.$("#disp-note").value };
  if (desk.ticket) {
    body.ticket = desk.ticket.id;
  }
  try {
    const saved = await pbx.api("POST", "/api/dispositions", body);
    pbx.text("#disp-status", "saved: " + saved.code);
  } catch (err) {
    pbx.error(err.message);
  }
}

function onMessage(message) {
  if (message.type === "agent") {
    showAgent(message.agent);
    if (message.call) {
      showCall(message.call);
    }
    desk.wrapupEnd = message.wrapup_left === null ? null : Date.now() / 1000 + message.wrapup_left;
    pbx.show("#wrapup", message.wrapup_left !== null);
  } else if (message.type === "pop") {
    showCall(message.call);
    showCustomer(message.customer, message.call.number);
    showTicket(message.tickets.length ? message.tickets[message.tickets.length - 1] : null);
    list("#pop-escalation", message.notes || [], (line) => "Escalated: " + line);
    if (!(message.notes || []).length) {
      pbx.$("#pop-escalation").replaceChildren();
    }
    if (message.suggested.length) {
      showArticles(message.suggested);
    }
    showCampaign(message.campaign);
    pbx.text("#disp-status", "");
  } else if (message.type === "ticket") {
    if (desk.ticket && desk.ticket.id === message.ticket.id) {
      const linked = desk.ticket.linked;
      showTicket(Object.assign(message.ticket, linked ? { linked } : {}));
    }
  } else if (message.type === "call") {
    showCall(message.call);
  }
}

async function main() {
  const me = await pbx.start();
  showAgent(me.agent);
  if (me.call) {
    showCall(me.call);
  }
  pbx.$("#btn-login").addEventListener("click", () => act("login"));
  pbx.$("#btn-logout").addEventListener("click", () => act("logout"));
  pbx.$("#btn-pause").addEventListener("click", () => act("pause", { reason: pbx.$("#pause-reason").value }));
  pbx.$("#btn-ready").addEventListener("click", () => act("unpause"));
  pbx.$("#ticket-form").addEventListener("submit", openTicket);
  pbx.$("#ticket-state").addEventListener("change", (e) => ticketChange("state", { state: e.target.value }));
  pbx.$("#note-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ticketChange("notes", { body: pbx.$("#note-body").value });
  });
  pbx.$("#kb-form").addEventListener("submit", (e) => search(e).catch((err) => pbx.error(err.message)));
  pbx.$("#new-customer").addEventListener("submit", saveCustomer);
  pbx.$("#disp-form").addEventListener("submit", dispose);
  pbx.$("#esc-form").addEventListener("submit", escalate);
  pbx.$("#xfer-form").addEventListener("submit", transfer);
  pbx.$("#cb-form").addEventListener("submit", scheduleCallback);
  pbx.$("#pop-call").addEventListener("click", callCustomer);
  showCallbacks().catch((err) => pbx.error(err.message));
  showMyTickets().catch((err) => pbx.error(err.message));
  if (me.role !== "agent") {
    pbx.show("#kb-write", true);
    pbx.$("#kb-write").addEventListener("submit", writeArticle);
  }
  for (const name of me.all_queues || []) {
    const option = pbx.el("option", name);
    option.value = name;
    pbx.$("#esc-queue").append(option);
  }
  window.setInterval(tick, 1000);
  pbx.live(onMessage);
  document.body.dataset.ready = "1";
}

main().catch((err) => pbx.error(err.message));
