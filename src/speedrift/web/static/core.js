/* speedrift dashboard: shared state, DOM helpers and the authenticated fetch (loaded first). */
(function () {
  "use strict";

  const SR = (window.SR = {});

  const TOKEN_KEY = "speedrift-token";
  const CARD_PAGE = 24;
  const TASK_PAGE = 60;
  const QUEUE_PAGE = 5;
  const TRIM_ABOVE = 300;     // nodes: above this, show the active neighbourhood unless "show all"
  const DAGRE_MAX = 500;      // nodes: above this, "auto" layout uses breadth-first (dagre is slow)
  const MAX_FIT_ZOOM = 1.8;    // a small graph is enlarged up to this on fit, not to fill the whole canvas

  const S = {
    seq: -1, waitingSnapshot: true, ws: null, backoff: 500,
    overview: {}, metrics: {}, cards: new Map(), order: [], edges: [], queues: {},
    prompts: new Map(), focused: null, view: "repo", allGraphs: null, allFetch: null, allTimer: null,
    graph: null, graphFetch: null, graphBuffer: [],
    cardLimit: CARD_PAGE, taskLimit: TASK_PAGE, queueLimits: {},
    token: null, cy: null, rendered: false, resyncs: 0,
  };

  // ------------------------------------------------------------------ helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function toast(message, bad) {
    const box = $("toast");
    box.textContent = message;
    box.className = "toast show" + (bad ? " bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.className = "toast"; }, 4000);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  // Re-rendering a list replaces its nodes; keyboard users must not lose their place.
  function keepFocus(container, render) {
    const active = document.activeElement;
    let key = null;
    if (active && container.contains(active)) {
      const holder = active.closest("[data-repo], [data-item], [data-task]");
      if (holder) {
        const attr = ["data-repo", "data-item", "data-task"].find((a) => holder.hasAttribute(a));
        key = { attr, value: holder.getAttribute(attr), self: active === holder, copy: active.dataset.copy || null, cls: active.className };
      }
    }
    render();
    if (!key) return;
    const holder = [...container.querySelectorAll("[" + key.attr + "]")].find((n) => n.getAttribute(key.attr) === key.value);
    if (!holder) return;
    let target = holder;
    if (!key.self) {
      target = (key.copy && holder.querySelector("[data-copy='" + key.copy + "']"))
        || [...holder.querySelectorAll("button")].find((b) => b.className === key.cls) || holder.querySelector("button") || holder;
    }
    target.focus({ preventScroll: true });
  }

  function trendArrow(trend) {
    return { improving: "▲", worsening: "▼", flat: "▬", new: "•" }[trend] || "";
  }

  // ------------------------------------------------------------------ auth

  function readToken() {
    const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);  // keep it out of the URL bar
    }
    S.token = sessionStorage.getItem(TOKEN_KEY);
  }

  function authHeaders() {
    return S.token ? { Authorization: "Bearer " + S.token } : {};
  }

  function setAuthState(state, text) {
    const badge = $("auth-state");
    badge.className = "badge auth-" + state;
    badge.textContent = text;
  }

  async function checkToken() {
    if (!S.token) { setAuthState("none", "read-only: no token"); return; }
    try {
      const response = await fetch("/api/auth/check", { method: "POST", headers: authHeaders() });
      if (response.ok) setAuthState("ok", "token ok");
      else setAuthState("bad", "token rejected");
    } catch (e) { setAuthState("bad", "token unchecked"); }
  }

  async function api(path, options) {
    const response = await fetch(path, { ...(options || {}), headers: { ...authHeaders(), ...((options || {}).headers || {}) } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const reason = (body && body.error) || response.statusText;
      const error = new Error(reason + " (" + response.status + ")" + (body && body.hint ? ": " + body.hint : ""));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function post(path, payload) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload || {}) });
  }

  Object.assign(SR, { TOKEN_KEY, CARD_PAGE, TASK_PAGE, QUEUE_PAGE, TRIM_ABOVE, DAGRE_MAX, MAX_FIT_ZOOM, S, $, el, toast, ago, keepFocus, trendArrow, readToken, authHeaders, setAuthState, checkToken, api, post });
})();
