/* Dialogs: run detail (one click from any task) and the control-mode form. */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, el, api, post, toast } = SR;

  // ------------------------------------------------------------------ run detail

  function kv(pairs) {
    const dl = el("dl", { class: "kv" });
    for (const [key, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", { text: key }), el("dd", { text: typeof value === "object" ? JSON.stringify(value) : String(value) }));
    }
    return dl;
  }

  async function openRun(repo, task) {
    const dialog = $("run-dialog");
    const body = $("run-body");
    $("run-title").textContent = task + " · " + repo;
    body.replaceChildren(el("p", { class: "muted", text: "loading…" }));
    if (!dialog.open) dialog.showModal();
    const node = S.graph && S.graph.repo === repo ? S.graph.nodes.get(task) : null;
    try {
      const list = await api("/api/repos/" + encodeURIComponent(repo) + "/runs/" + encodeURIComponent(task));
      const why = node ? SR.unverifiedWhy(node) : null;
      const head = node ? kv([["status", node.status + (node.ready ? " (ready)" : "") + (why ? " (unverified)" : "")], ["unverified", why], ["title", node.title], ["after", node.after.map((b) => SR.blockerText(node, b)).join(", ")], ["priority", node.priority], ["assigned", node.assigned]]) : null;
      if (!list.attempts.length) { body.replaceChildren(...[head, el("p", { class: "muted", text: "No attempt has run for this task yet." })].filter(Boolean)); return; }
      const picker = el("div", { class: "row" }, ...list.attempts.map((a) =>
        el("button", { type: "button", "aria-label": "attempt " + a.attempt + ", " + a.state + (a.machine ? ", on " + a.machine : ""), "data-machine": a.machine || "", onclick: () => showAttempt(repo, task, a.attempt, holder) },
          "#" + a.attempt + " " + a.state + (a.machine ? " · " + a.machine : ""))));
      const holder = el("div");
      body.replaceChildren(...[head, picker, holder].filter(Boolean));
      await showAttempt(repo, task, list.attempts[0].attempt, holder);
    } catch (error) {
      body.replaceChildren(el("p", { class: "error", text: error.message }));
    }
  }

  async function showAttempt(repo, task, attempt, holder) {
    unfollow();
    const d = await api("/api/repos/" + encodeURIComponent(repo) + "/runs/" + encodeURIComponent(task) + "/" + attempt);
    const record = d.record || {};
    const diff = d.diff || {};
    const usage = d.usage || {};
    const gateWords = { pass: "passed", fail: "failed", warn: "warning", skipped: "skipped" };
    const gateName = (g) => g.gate || g.name || (Array.isArray(g.results) ? "" : "gate");
    const gates = (d.gates || []).map((g) => (g.passed ? "✔ " : "✘ ") + gateName(g) + (g.summary ? (gateName(g) ? ": " : "") + g.summary : "") +
      (Array.isArray(g.results) ? g.results.map((r) => "\n    " + String(r.gate).padEnd(9) + " " + (gateWords[r.status] || r.status).padEnd(8) + " " + (r.reason || "")).join("") : "")).join("\n");
    const ev = d.evidence || {};
    const verified = ev.verified === true ? "yes — the tests ran and nothing new fails" : ev.verified === false ? "no — " + (ev.unverified_reason || "the tests did not run") : null;
    const box = ev.sandbox || record.sandbox;  // agents/sandbox.py: {used, network} or {used: false, why}
    const sandboxed = !box ? null : box.used ? "yes" + (box.network === false ? ", no network" : "") : "not sandboxed: " + (box.why || "unknown");
    const controls = el("div", { class: "row" });
    if (record.state === "running") {
      controls.append(
        el("button", { type: "button", onclick: () => agentSignal(repo, task, d.paused ? "resume" : "pause") }, d.paused ? "resume agent" : "pause agent"));
    }
    holder.replaceChildren(...[
      kv([["attempt", attempt], ["state", record.state + (d.paused ? " (paused)" : "")], ["runtime", record.runtime], ["model", record.model], ["machine", d.machine], ["started", record.started],
          ["failure", record.failure], ["reason", record.reason], ["landed", record.landed_commit], ["verified", verified], ["sandbox", sandboxed],
          ["diff", diff.files !== undefined ? diff.files + " files, +" + diff.insertions + "/-" + diff.deletions : null],
          ["cost", usage.cost_usd !== undefined ? "$" + Number(usage.cost_usd).toFixed(4) : null],
          ["tokens", usage.input_tokens !== undefined ? usage.input_tokens + " in / " + usage.output_tokens + " out" : null],
          ["duration", d.evidence && d.evidence.duration_s !== undefined ? d.evidence.duration_s + " s" : null]]),
      controls,
      el("h3", { class: "sub", text: "Gate evidence" }), el("div", { class: "events", text: gates || "no gate results" }),
      el("h3", { class: "sub", text: "Events" + (d.events_truncated ? " (latest)" : "") }, d.running ? el("span", { class: "badge ev-live", text: "live" }) : null), eventList(d.events || []),
      d.stderr_tail ? el("h3", { class: "sub", text: "stderr (tail)" }) : null, d.stderr_tail ? el("div", { class: "events", text: d.stderr_tail }) : null,
    ].filter(Boolean));
    const list = holder.querySelector(".ev-list");
    if (d.running && list) follow(repo, task, attempt, d.events_position || 0, list, holder.querySelector(".ev-live"));
  }

  // ------------------------------------------------------------------ events (rendered server-side: eventview)

  const MAX_EVENT_ROWS = 1000;  // the list keeps the latest rows; older ones are dropped from the DOM
  const live = { ws: null, repo: null, task: null, attempt: null, position: 0, list: null, badge: null, timer: null, awaiting: 0 };

  function clock(ts) {
    const text = String(ts || "");
    const at = text.indexOf("T");
    return at < 0 ? text : text.slice(at + 1).replace("Z", "");
  }

  function eventRow(e) {
    const v = e.view || { style: "other", line: e.text || "", kind: e.kind };
    const style = String(v.style || "other");
    const row = el("div", { class: "ev ev-" + style, "data-style": style, title: e.ts || "" },
      el("span", { class: "ev-time", text: clock(e.ts) }), " ",
      el("span", { class: "ev-badge ev-" + style, text: style }), " ",
      el("span", { class: "ev-line", text: v.line || "" }));
    if (v.detail) row.append(el("details", { class: "ev-detail" }, el("summary", { text: "more" }), el("pre", { text: v.detail })));
    return row;
  }

  function eventList(events) {
    const list = el("div", { class: "events ev-list", role: "log", "aria-live": "polite" });
    if (!events.length) list.append(el("div", { class: "muted ev-none", text: "no events yet" }));
    appendEvents(list, events);
    requestAnimationFrame(() => { list.scrollTop = list.scrollHeight; });
    return list;
  }

  function appendEvents(list, events) {
    if (!events.length) return;
    const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 24;  // the user has not scrolled up
    const none = list.querySelector(".ev-none");
    if (none) none.remove();
    for (const e of events) list.append(eventRow(e));
    while (list.childElementCount > MAX_EVENT_ROWS) list.firstElementChild.remove();
    if (pinned) list.scrollTop = list.scrollHeight;
  }

  function sendFollow() {
    const ws = S.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (live.ws !== ws) {
      if (live.ws) live.ws.removeEventListener("message", onMessage);
      ws.addEventListener("message", onMessage);
      live.ws = ws;
    }
    live.awaiting = Date.now();
    ws.send(JSON.stringify({ type: "follow", repo: live.repo, task: live.task, attempt: live.attempt, position: live.position }));
  }

  function follow(repo, task, attempt, position, list, badge) {
    unfollow();
    Object.assign(live, { repo, task, attempt, position, list, badge, ws: null });
    sendFollow();
    // the page's socket may be replaced (a reconnect): follow again on the new one, from where we are
    live.timer = setInterval(() => { if (S.ws !== live.ws) sendFollow(); }, 500);
    const dialog = $("run-dialog");
    dialog.addEventListener("close", unfollow, { once: true });
  }

  function unfollow() {
    if (live.timer) clearInterval(live.timer);
    live.timer = null;
    if (live.ws) {
      live.ws.removeEventListener("message", onMessage);
      if (live.list && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ type: "unfollow" }));
    }
    live.ws = null;
    live.list = null;
  }

  function onMessage(event) {
    let m;
    try { m = JSON.parse(event.data); } catch (e) { return; }
    if (!live.list) return;
    if (m.type === "events_error") { appendEvents(live.list, [{ view: { style: "error", line: m.message } }]); unfollow(); return; }
    if (m.type !== "events" || m.repo !== live.repo || m.task !== live.task || m.attempt !== live.attempt) return;
    if (m.from !== live.position) {
      if (m.position <= live.position || Date.now() - live.awaiting < 3000) return;  // old news, or our follow's answer is on its way
      sendFollow();  // a batch went missing (the socket resynced): go on from what we hold
      return;
    }
    live.awaiting = 0;
    live.position = m.position;
    appendEvents(live.list, m.events || []);
    if (m.end) {
      const end = m.end;
      const why = [end.failure, end.reason].filter(Boolean).join(": ") || (end.state === "running" ? "its process is gone" : "");
      appendEvents(live.list, [{ view: { style: end.state === "failed" ? "error" : "finished", line: "attempt " + live.attempt + " " + end.state + (why ? ": " + why : "") } }]);
      if (live.badge) live.badge.textContent = end.state;
      unfollow();
    }
  }

  async function agentSignal(repo, task, op) {
    try {
      await post("/api/repos/" + encodeURIComponent(repo) + "/agents/" + encodeURIComponent(task) + "/" + op);
      toast(task + ": agent " + (op === "pause" ? "paused" : "resumed"));
      openRun(repo, task);
    } catch (error) { toast(op + " refused: " + error.message, true); }
  }

  // ------------------------------------------------------------------ mode dialog

  function openModeDialog(name) {
    const card = S.cards.get(name);
    $("mode-repo").textContent = name;
    $("mode-select").value = (card && card.mode) || "observe";
    $("mode-ttl").value = "";
    $("mode-reason").value = "";
    $("mode-error").textContent = S.token ? "" : "No token in this tab: open the URL from `speedrift dashboard --print-url`.";
    $("mode-dialog").dataset.repo = name;
    $("mode-dialog").showModal();
  }

  async function submitMode(event) {
    event.preventDefault();
    const dialog = $("mode-dialog");
    const name = dialog.dataset.repo;
    const payload = { mode: $("mode-select").value, lease_ttl: $("mode-ttl").value.trim() || null, reason: $("mode-reason").value.trim() || null };
    try {
      const result = await post("/api/repos/" + encodeURIComponent(name) + "/mode", payload);
      dialog.close();
      toast(name + ": mode " + result.mode + (result.lease_owner ? ", lease " + result.lease_owner : ""));
    } catch (error) {
      $("mode-error").textContent = "refused: " + error.message;
      toast("mode change refused: " + error.message, true);
    }
  }

  Object.assign(SR, { openRun, openModeDialog, submitMode });
})();
