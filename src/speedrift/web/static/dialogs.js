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
    const events = (d.events || []).map((e) => (e.ts || "") + " " + (e.kind || "?") + " " + (e.text || "")).join("\n");
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
      el("h3", { class: "sub", text: "Events" + (d.events_truncated ? " (latest)" : "") }), el("div", { class: "events", text: events || "no events" }),
      d.stderr_tail ? el("h3", { class: "sub", text: "stderr (tail)" }) : null, d.stderr_tail ? el("div", { class: "events", text: d.stderr_tail }) : null,
    ].filter(Boolean));
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
