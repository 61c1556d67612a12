// The admin page: users and roles, queues and members, the IVR menus, trunks and DIDs,
// recordings.
"use strict";

function row(...cells) {
  const tr = pbx.el("tr");
  for (const cell of cells) {
    tr.append(cell instanceof Node ? cell : pbx.el("td", cell));
  }
  return tr;
}

async function users() {
  const data = await pbx.api("GET", "/api/admin/users");
  pbx.$("#users").replaceChildren(
    ...data.users.map((u) => {
      const select = pbx.el("select");
      select.dataset.user = u.name;
      for (const role of ["agent", "supervisor", "admin"]) {
        const option = pbx.el("option", role);
        option.selected = role === u.role;
        select.append(option);
      }
      select.addEventListener("change", async () => {
        try {
          await pbx.api("POST", "/api/admin/users/" + encodeURIComponent(u.name) + "/role", { role: select.value });
        } catch (err) {
          pbx.error(err.message);
          await users();
        }
      });
      const td = pbx.el("td");
      td.append(select);
      return row(u.name, u.display_name || "", td);
    }),
  );
}

async function queues() {
  const data = await pbx.api("GET", "/api/admin/queues");
  pbx.$("#queues").replaceChildren(
    ...data.queues.map((q) => {
      const members = pbx.el("td");
      for (const agent of q.members) {
        const remove = pbx.el("button", agent + " \u00d7");
        remove.title = "Take " + agent + " out of " + q.name;
        remove.addEventListener("click", () => change("DELETE", q.name + "/members/" + encodeURIComponent(agent)));
        members.append(remove, " ");
      }
      const add = pbx.el("input");
      add.placeholder = "add agent";
      add.size = 8;
      add.addEventListener("change", () => change("POST", q.name + "/members", { agent: add.value.trim() }));
      members.append(add);
      const edit = pbx.el("button", "Edit");
      edit.type = "button";
      edit.dataset.queue = q.name;
      edit.addEventListener("click", () => editQueue(q, data.strategies));
      const settings = pbx.el("td");
      settings.append(edit);
      return row(q.name, q.number, q.strategy, members, settings);
    }),
  );
}

// The settings the admin page edits (the server checks them again): name, label, kind
// ("text", "text?" may be left empty, "seconds", "count", "yes/no", "strategy").
const QUEUE_FIELDS = [
  ["number", "Number", "text"],
  ["strategy", "Strategy", "strategy"],
  ["ring_seconds", "Ring each agent (s)", "seconds"],
  ["retry_seconds", "Pause between rounds (s)", "seconds"],
  ["wrapup_seconds", "Wrap-up (s)", "seconds"],
  ["max_callers", "Most callers waiting (0: no limit)", "count"],
  ["max_wait_seconds", "Longest wait (s, 0: no limit)", "seconds"],
  ["overflow", "Overflow to number", "text?"],
  ["service_level_seconds", "Service level threshold (s)", "seconds"],
  ["announce_frequency", "Announce position every (s, 0: never)", "seconds"],
  ["periodic_announce", "Periodic announcement prompt", "text?"],
  ["periodic_frequency", "Periodic announcement every (s)", "seconds"],
  ["music", "Music class", "text?"],
  ["weight", "Weight", "count"],
  ["ring_in_use", "Ring agents already on a call", "yes/no"],
  ["autopause_after", "Pause an agent after missed offers (0: never)", "count"],
  ["callback_key", "Callback key", "text?"],
  ["voicemail_key", "Voicemail key", "text?"],
  ["callback_attempts", "Callback attempts", "count"],
];

function editQueue(q, strategies) {
  const form = pbx.$("#queue-form");
  pbx.text("#queue-form-title", "Settings of " + q.name);
  const inputs = QUEUE_FIELDS.map(([name, label, kind]) => {
    let input;
    if (kind === "strategy") {
      input = pbx.el("select");
      for (const s of strategies) {
        const option = pbx.el("option", s);
        option.selected = s === q[name];
        input.append(option);
      }
    } else {
      input = pbx.el("input");
      if (kind === "yes/no") {
        input.type = "checkbox";
        input.checked = q[name];
      } else {
        input.type = kind === "seconds" || kind === "count" ? "number" : "text";
        input.step = kind === "seconds" ? "any" : "1";
        input.value = q[name] === null ? "" : String(q[name]);
      }
    }
    input.name = name;
    const wrap = pbx.el("label", label + " ");
    wrap.append(input);
    return [name, kind, input, wrap];
  });
  pbx.$("#queue-fields").replaceChildren(...inputs.map((i) => i[3]));
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const body = {};
    for (const [name, kind, input] of inputs) {
      let value = input.value;
      if (kind === "yes/no") {
        value = input.checked;
      } else if (kind === "seconds" || kind === "count") {
        value = Number(value);
      } else if (kind === "text?" && value.trim() === "") {
        value = null;
      }
      if (value !== q[name]) {
        body[name] = value;
      }
    }
    try {
      await pbx.api("PATCH", "/api/admin/queues/" + encodeURIComponent(q.name), body);
      form.hidden = true;
      pbx.error("");
    } catch (err) {
      pbx.error(err.message);
    }
    await queues();
  };
  pbx.$("#queue-cancel").onclick = () => {
    form.hidden = true;
  };
}

async function change(method, path, body) {
  try {
    await pbx.api(method, "/api/admin/queues/" + path, body);
  } catch (err) {
    pbx.error(err.message);
  }
  await queues();
}

// The whole IVR document replaced by the text area's; the server checks it as
// `pbx ivr import` does and answers with the stored form and its warnings.
async function saveIvr(event) {
  event.preventDefault();
  pbx.error("");
  pbx.text("#ivr-status", "");
  pbx.$("#ivr-warnings").replaceChildren();
  try {
    const result = await pbx.api("PUT", "/api/admin/ivr", { toml: pbx.$("#ivr").value });
    pbx.$("#ivr").value = result.toml;
    pbx.text("#ivr-status", "saved: " + result.menus.length + " menus, " + result.schedules.length + " schedules");
    pbx.$("#ivr-warnings").replaceChildren(...result.warnings.map((w) => pbx.el("li", w)));
  } catch (err) {
    pbx.error(err.message);
  }
}

async function sessions() {
  const data = await pbx.api("GET", "/api/sessions?all=1");
  pbx.$("#sessions").replaceChildren(
    ...data.sessions.map((s) => {
      const td = pbx.el("td");
      if (s.current) {
        td.append("this page");
      } else {
        const end = pbx.el("button", "End");
        end.dataset.session = s.id;
        end.addEventListener("click", async () => {
          try {
            await pbx.api("DELETE", "/api/sessions/" + s.id);
          } catch (err) {
            pbx.error(err.message);
          }
          await sessions();
        });
        td.append(end);
      }
      return row(s.user, pbx.when(s.created), pbx.when(s.expires), td);
    }),
  );
}

async function main() {
  await pbx.start();
  await users();
  await queues();
  await sessions();
  pbx.$("#ivr").value = (await pbx.api("GET", "/api/admin/ivr")).toml;
  pbx.$("#ivr-form").addEventListener("submit", saveIvr);
  const lines = await pbx.api("GET", "/api/admin/trunks");
  pbx.$("#trunks").replaceChildren(
    ...lines.trunks.map((t) => row(t.name, t.host, t.state, t.channels + " / " + (t.max_channels || "-"))),
  );
  pbx.$("#dids").replaceChildren(...lines.dids.map((d) => row(d.number, d.target)));
  const recordings = await pbx.api("GET", "/api/admin/recordings");
  pbx.$("#recordings").replaceChildren(
    ...recordings.recordings.map((r) => {
      const audio = pbx.el("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = "/api/admin/recordings/" + r.id + ".wav";
      const td = pbx.el("td");
      td.append(audio);
      return row(r.id, r.caller, r.callee, pbx.when(r.start), td);
    }),
  );
  document.body.dataset.ready = "1";
}

main().catch((err) => pbx.error(err.message));
