/* The Agents panel: the ecosystem's standing agents (/api/agents: what `speedrift agents list --json`
 * prints) — layer, schedule and next slot, state, drift level, pause and why, last run — with a Run
 * button for growth agents (POST /api/agents/<name>/run: `speedrift agents run NAME --detach`) and a
 * Resume button for paused ones (POST /api/agents/<name>/resume). Both need the token. Refreshed
 * every 20 s and when a new hub cycle arrives. All text from the server goes into the DOM as text. */
(function () {
  "use strict";

  const SR = window.SR;
  const { $, el, api, post, toast } = SR;
  const REFRESH_MS = 20000;

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "";
  }

  function scheduleText(agent) {
    if (agent.layer === "core") return agent.schedule + " (" + agent.tz + ") · next " + (when(agent.next_slot) || "never");
    return agent.layer === "safety" ? "always on" : "on demand";
  }

  function stateText(agent) {
    if (!agent.enabled) return "disabled";
    if (agent.paused) {
      const until = agent.paused.until ? " until " + when(agent.paused.until) : "";
      return "paused by " + agent.paused.by + until + ": " + agent.paused.reason;
    }
    const now = (agent.now || []).map((d) => d.verdict + ": " + d.reason);
    return now.length ? now.join("; ") : "enabled";
  }

  function lastRun(agent) {
    const run = agent.last_run;
    return run ? run.repo + ":" + run.task + " " + run.status + (run.ended_at ? " · " + when(run.ended_at) : "") : "no runs yet";
  }

  async function act(button, path, done) {
    button.disabled = true;
    try {
      const result = await post(path, {});
      toast(done(result));
      await loadAgents();
    } catch (error) {
      toast(error.message, true);
      button.disabled = false;
    }
  }

  function row(agent) {
    const name = agent.name;
    const actions = el("td", { class: "actions" });
    if (agent.layer === "growth" && agent.enabled && !agent.paused) {
      actions.append(el("button", {
        type: "button", class: "agent-run", "aria-label": "Run " + name + " now",
        onclick: (event) => act(event.currentTarget, "/api/agents/" + encodeURIComponent(name) + "/run",
          (r) => "started " + (r.repo || "") + ":" + (r.task || name)),
      }, "Run"));
    }
    if (agent.paused) {
      actions.append(el("button", {
        type: "button", class: "agent-resume", "aria-label": "Resume " + name,
        onclick: (event) => act(event.currentTarget, "/api/agents/" + encodeURIComponent(name) + "/resume",
          (r) => r.message || "resumed " + name),
      }, "Resume"));
    }
    const drift = (agent.drift && agent.drift.level) || "normal";
    return el("tr", { "data-agent": name, class: agent.paused ? "paused" : null },
      el("td", {}, el("strong", { text: name }), el("div", { class: "muted", text: agent.repos.join(", ") })),
      el("td", { text: agent.layer }),
      el("td", { text: scheduleText(agent) }),
      el("td", { class: "agent-state", text: stateText(agent) }),
      el("td", { class: "drift drift-" + drift, text: drift }),
      el("td", { text: lastRun(agent) }),
      actions);
  }

  function render(data) {
    const agents = data.agents || [];
    $("agent-count").textContent = agents.length ? "(" + agents.length + ")" : "";
    const body = $("agent-rows");
    body.replaceChildren(...agents.map(row));
    $("agents-table").hidden = !agents.length;
    const notes = [...(data.problems || [])];
    if (!agents.length) notes.unshift("No standing agents are declared ([[agents]] in ecosystem.toml or a repo's speedrift.toml).");
    $("agents-note").textContent = notes.join(" · ");
  }

  async function loadAgents() {
    try { render(await api("/api/agents")); }
    catch (error) { $("agents-note").textContent = "agents unavailable: " + error.message; }
  }

  function init() {
    loadAgents();
    setInterval(loadAgents, REFRESH_MS);
    let pending = null;  // a new cycle may have fired a slot or restarted an agent
    new MutationObserver(() => { clearTimeout(pending); pending = setTimeout(loadAgents, 700); })
      .observe($("cycle-info"), { childList: true, characterData: true, subtree: true });
  }

  SR.loadAgents = loadAgents;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
