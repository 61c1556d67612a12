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
      return row(q.name, q.number, q.strategy, members);
    }),
  );
}

async function change(method, path, body) {
  try {
    await pbx.api(method, "/api/admin/queues/" + path, body);
  } catch (err) {
    pbx.error(err.message);
  }
  await queues();
}

async function main() {
  await pbx.start();
  await users();
  await queues();
  pbx.text("#ivr", (await pbx.api("GET", "/api/admin/ivr")).toml || "(no menus)");
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
