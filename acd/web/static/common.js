// Shared by the console's pages: the JSON API with the session's CSRF token, the live
// WebSocket, and helpers that only ever put text into the page (never markup).
"use strict";

const pbx = {
  csrf: "",
  me: null,

  async api(method, path, body) {
    const init = { method, headers: { "X-CSRF-Token": pbx.csrf }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Error("logged out");
    }
    const data = await response.json();
    if (!response.ok) {
      throw new Error(data.error || String(response.status));
    }
    return data;
  },

  async start() {
    pbx.me = await pbx.api("GET", "/api/me");
    pbx.csrf = pbx.me.csrf;
    for (const field of document.querySelectorAll("input[name=csrf]")) {
      field.value = pbx.csrf;
    }
    pbx.text("#user", pbx.me.user + " (" + pbx.me.role + ")");
    return pbx.me;
  },

  // The live feed: calls `onMessage` with each message; reconnects after a drop.
  live(onMessage) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + window.location.host + "/ws");
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    socket.addEventListener("open", () => pbx.text("#link", "live"));
    socket.addEventListener("close", () => {
      pbx.text("#link", "reconnecting");
      window.setTimeout(() => pbx.live(onMessage), 2000);
    });
  },

  $(selector) {
    return document.querySelector(selector);
  },

  text(selector, value) {
    const node = typeof selector === "string" ? pbx.$(selector) : selector;
    if (node) {
      node.textContent = value === null || value === undefined ? "" : String(value);
    }
  },

  el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  },

  clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) {
      return "-";
    }
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  },

  when(unix) {
    return unix ? new Date(unix * 1000).toLocaleString() : "-";
  },

  show(selector, visible) {
    const node = pbx.$(selector);
    if (node) {
      node.hidden = !visible;
    }
  },

  error(message) {
    pbx.text("#error", message);
  },
};
