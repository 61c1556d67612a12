// The supervisor's wallboard: per queue waiting callers, longest wait, agents by state;
// per agent time in state and pause reason. Frames come over the WebSocket when a queue
// or agent event happens (no polling); the clocks tick locally in between.
"use strict";

const board = { frame: null, seen: 0 };

function cell(text, id) {
  const td = pbx.el("td", text);
  if (id) {
    td.id = id;
  }
  return td;
}

function render() {
  const frame = board.frame;
  if (!frame) {
    return;
  }
  const since = Date.now() / 1000 - board.seen;
  const states = ["available", "ringing", "on-call", "wrap-up", "paused", "logged-out"];
  pbx.$("#queues").replaceChildren(
    ...frame.queues.map((q) => {
      const row = pbx.el("tr");
      row.dataset.queue = q.name;
      const longest = q.waiting.length ? q.longest_wait + since : null;
      row.append(
        cell(q.name),
        cell(q.waiting.length, "waiting-" + q.name),
        cell(pbx.clock(longest), "longest-" + q.name),
        ...states.map((s) => cell(q.agents[s] || 0, s + "-" + q.name)),
      );
      return row;
    }),
  );
  pbx.$("#agents").replaceChildren(
    ...frame.agents.map((a) => {
      const row = pbx.el("tr");
      row.dataset.agent = a.name;
      row.append(
        cell(a.name),
        cell(a.state, "state-" + a.name),
        cell(pbx.clock(a.in_state + since)),
        cell(a.state === "paused" ? a.reason || "" : ""),
        cell((a.queues || []).join(", ")),
      );
      return row;
    }),
  );
}

function onMessage(message) {
  if (message.type === "wallboard") {
    board.frame = message;
    board.seen = Date.now() / 1000;
    pbx.text("#updated", new Date().toLocaleTimeString());
    render();
  }
}

async function main() {
  await pbx.start();
  pbx.live(onMessage);
  window.setInterval(render, 1000);
  document.body.dataset.ready = "1";
}

main().catch((err) => pbx.error(err.message));
