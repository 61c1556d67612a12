// The supervisor's wallboard: per queue waiting callers, longest wait, agents by state;
// per agent time in state and pause reason. Frames come over the WebSocket when a queue
// or agent event happens (no polling); the clocks tick locally in between.
"use strict";

const board = { frame: null, seen: 0, figures: "", charting: null };

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
      const t = q.today || {};
      const pct = (x) => (x === null || x === undefined ? "-" : Math.round(x * 100) + "%");
      row.append(
        cell(q.name),
        cell(q.waiting.length, "waiting-" + q.name),
        cell(pbx.clock(longest), "longest-" + q.name),
        ...states.map((s) => cell(q.agents[s] || 0, s + "-" + q.name)),
        cell(t.offered === undefined ? "-" : t.offered, "offered-" + q.name),
        cell(pct(t.sl), "sl-" + q.name),
        cell(t.asa === null || t.asa === undefined ? "-" : pbx.clock(t.asa), "asa-" + q.name),
        cell(pct(t.abandon_rate), "abandon-" + q.name),
      );
      row.className = queueAlarms(q, since).length ? "alarm" : "";
      return row;
    }),
  );
  showAlarms(frame, since);
  showCampaigns(frame.campaigns || []);
  pbx.$("#agents").replaceChildren(
    ...frame.agents.map((a) => {
      const row = pbx.el("tr");
      row.dataset.agent = a.name;
      const actions = pbx.el("td");
      if (a.state === "on-call") {
        for (const mode of ["listen", "whisper", "barge"]) {
          const button = pbx.el("button", mode, "supervise");
          button.type = "button";
          button.dataset.agent = a.name;
          button.dataset.mode = mode;
          button.addEventListener("click", () => supervise(a.name, mode));
          actions.append(button, " ");
        }
      }
      row.append(
        cell(a.name),
        cell(a.state, "state-" + a.name),
        cell(pbx.clock(a.in_state + since)),
        cell(a.state === "paused" ? a.reason || "" : ""),
        cell((a.queues || []).join(", ")),
        actions,
      );
      return row;
    }),
  );
}

// Outbound campaigns: today's dialled, answered (human / machine), connected and dropped
// calls, the abandon rate today and over the compliance profile's window, and each
// agent's talk share of the day.
function showCampaigns(campaigns) {
  pbx.show("#campaigns-title", campaigns.length > 0);
  pbx.show("#campaigns-table", campaigns.length > 0);
  pbx.$("#campaigns").replaceChildren(
    ...campaigns.map((c) => {
      const row = pbx.el("tr");
      row.dataset.campaign = c.name;
      const id = (what) => "campaign-" + what + "-" + c.name;
      const talk = Object.entries(c.talk_pct || {}).map(([agent, pct]) => agent + " " + pct + "%");
      row.append(
        cell(c.name),
        cell(c.state, id("state")),
        cell(c.mode),
        cell(c.dialled, id("dialled")),
        cell(c.answered, id("answered")),
        cell(c.human + " / " + c.machine, id("human-machine")),
        cell(c.connected, id("connected")),
        cell(c.dropped, id("dropped")),
        cell(c.abandon_today_pct + "%", id("abandon-today")),
        cell(c.abandon_rolling_pct + "%", id("abandon-rolling")),
        cell(talk.join(", ") || "-", id("talk")),
      );
      return row;
    }),
  );
}

// The frame's alarms (SL under target) and, ticking here between frames, a caller
// waiting past the queue's service-level threshold.
function queueAlarms(q, since) {
  const found = (q.alarms || []).filter((text) => !text.startsWith("a caller has waited"));
  const longest = q.waiting.length ? q.longest_wait + since : null;
  if (longest !== null && longest > q.threshold) {
    found.push("a caller has waited " + pbx.clock(longest) + " (threshold " + pbx.clock(q.threshold) + ")");
  }
  return found;
}

function showAlarms(frame, since) {
  const items = [];
  for (const q of frame.queues) {
    for (const text of queueAlarms(q, since)) {
      items.push(pbx.el("li", q.name + ": " + text));
    }
  }
  pbx.$("#alarms").replaceChildren(...items);
}

async function supervise(agent, mode) {
  pbx.error("");
  try {
    const result = await pbx.api("POST", "/api/supervise", { agent, mode });
    pbx.text("#supervise-status", "your phone joins " + result.agent + " (" + result.mode + ")");
  } catch (err) {
    pbx.error(err.message);
  }
}

// Bars: calls offered (light) and answered (dark) per hour; a line: SL per hour.
async function chart() {
  const data = await pbx.api("GET", "/api/report?since=today&interval=3600");
  const select = pbx.$("#chart-queue");
  const names = [...new Set(data.rows.map((r) => r.queue))];
  if (select.options.length !== names.length) {
    const current = select.value;
    select.replaceChildren(...names.map((n) => pbx.el("option", n)));
    if (names.includes(current)) {
      select.value = current;
    }
  }
  const rows = data.rows.filter((r) => r.queue === select.value);
  const pct = (x) => (x === null ? "-" : Math.round(x * 100) + "%");
  pbx.$("#chart-rows").replaceChildren(
    ...rows.map((r) => {
      const row = pbx.el("tr");
      row.append(
        cell(new Date(r.start * 1000).getHours() + "h"),
        cell(r.offered),
        cell(r.answered),
        cell(pct(r.sl)),
      );
      return row;
    }),
  );
  const canvas = pbx.$("#chart");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1, ...rows.map((r) => r.offered));
  const width = canvas.width / Math.max(rows.length, 1);
  const base = canvas.height - 20;
  g.font = "12px sans-serif";
  rows.forEach((r, i) => {
    const x = i * width;
    g.fillStyle = "#b9c9e8";
    g.fillRect(x + 2, base - (r.offered / top) * (base - 10), width / 2 - 2, (r.offered / top) * (base - 10));
    g.fillStyle = "#1f5fbf";
    g.fillRect(x + width / 2, base - (r.answered / top) * (base - 10), width / 2 - 2, (r.answered / top) * (base - 10));
    g.fillStyle = "#1d2330";
    g.fillText(new Date(r.start * 1000).getHours() + "h", x + 2, canvas.height - 5);
  });
  g.strokeStyle = "#1b8a3a";
  g.beginPath();
  rows.forEach((r, i) => {
    if (r.sl === null) {
      return;
    }
    const y = base - r.sl * (base - 10);
    const x = i * width + width / 2;
    if (i === 0) {
      g.moveTo(x, y);
    } else {
      g.lineTo(x, y);
    }
  });
  g.stroke();
  canvas.dataset.drawn = String(Number(canvas.dataset.drawn || 0) + 1);
}

function onMessage(message) {
  if (message.type === "wallboard") {
    board.frame = message;
    board.seen = Date.now() / 1000;
    pbx.text("#updated", new Date().toLocaleTimeString());
    render();
    redrawWhenFiguresMove(message);
  }
}

// Today's figures moved (a call offered, answered or abandoned): draw the chart again
// from the report route, at most once a second however fast frames come.
function redrawWhenFiguresMove(frame) {
  const figures = JSON.stringify(frame.queues.map((q) => [q.name, q.today]));
  if (figures === board.figures || board.charting) {
    return;
  }
  const first = board.figures === "";
  board.figures = figures;
  board.charting = window.setTimeout(
    () => {
      board.charting = null;
      chart().catch((err) => pbx.error(err.message));
    },
    first ? 0 : 1000,
  );
}

async function main() {
  await pbx.start();
  pbx.live(onMessage);
  window.setInterval(render, 1000);
  pbx.$("#chart-queue").addEventListener("change", () => chart().catch((e) => pbx.error(e.message)));
  window.setInterval(() => chart().catch((err) => pbx.error(err.message)), 60000);
  document.body.dataset.ready = "1";
}

main().catch((err) => pbx.error(err.message));
