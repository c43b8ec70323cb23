/* Section 4: the focused repo's task graph, the inter-repo graph, the task list (cytoscape + dagre). */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, el, api, keepFocus, renderCards, TASK_PAGE, TRIM_ABOVE, DAGRE_MAX, MAX_FIT_ZOOM } = SR;

  // ------------------------------------------------------------------ section 4: graphs

  function focusRepo(name, scroll) {
    S.focused = name;
    S.taskLimit = TASK_PAGE;
    selectView("repo");
    renderCards();
    fetchGraph(name);
    if (scroll) $("graphs").scrollIntoView({ block: "start" });
  }

  function selectView(view) {
    S.view = view;
    $("tab-repo").setAttribute("aria-selected", String(view === "repo"));
    $("tab-eco").setAttribute("aria-selected", String(view === "eco"));
    $("focused-name").textContent = S.focused || "none";
    $("show-all").disabled = view !== "repo";
    if (view === "eco") renderEcoGraph();
    else renderRepoGraph();
  }

  async function fetchGraph(name) {
    const token = {};
    S.graphFetch = token;
    S.graphBuffer = [];
    try {
      const data = await api("/api/repos/" + encodeURIComponent(name) + "/graph");
      if (S.graphFetch !== token) return;  // a newer focus won
      S.graph = { repo: name, seq: data.seq, hasGraph: data.graph, nodes: new Map(data.nodes.map((n) => [n.id, n])) };
      S.graphFetch = null;
      for (const [seq, change] of S.graphBuffer) if (seq > S.graph.seq) mergeGraph(change);
      S.graphBuffer = [];
      if (S.view === "repo") renderRepoGraph();
    } catch (error) {
      if (S.graphFetch === token) { S.graphFetch = null; $("graph-note").textContent = "graph unavailable: " + error.message; }
    }
  }

  function applyGraphDelta(seq, change) {
    if (change.repo !== S.focused) return;
    if (S.graphFetch) { S.graphBuffer.push([seq, change]); return; }
    if (!S.graph || S.graph.repo !== change.repo || seq <= S.graph.seq) return;
    const structural = mergeGraph(change);
    S.graph.seq = seq;
    if (S.view !== "repo") return;
    if (structural || !S.cy) renderRepoGraph();
    else { restyleNodes(change.upsert); renderTaskList(); }
  }

  function mergeGraph(change) {
    let structural = change.remove.length > 0;
    for (const id of change.remove) S.graph.nodes.delete(id);
    for (const node of change.upsert) {
      const old = S.graph.nodes.get(node.id);
      if (!old || old.after.join("\u0000") !== node.after.join("\u0000")) structural = true;
      S.graph.nodes.set(node.id, node);
    }
    return structural;
  }

  function nodeClass(node) {
    if (node.status === "in-progress") return "running";
    if (node.ready) return "ready";
    if (node.paused) return "paused";
    if (node.status === "open" || node.status === "blocked" || node.status === "incomplete") return "blocked";
    if (node.status === "done" && node.unverified) return "done unverified";
    return node.status;
  }

  // an `after` id not in this repo's graph: a REPO:TASK in a peer repo (its node's `peers` names
  // its status there, or that it does not exist), or missing — only the latter is a broken edge
  const PEER_SATISFIED = new Set(["done", "abandoned"]);
  const PEER_BROKEN = new Map([["no-such-task", "no such task"], ["unregistered-repo", "repo not registered"]]);

  function blockerLook(node, id) {
    const peer = node.peers ? node.peers[id] : undefined;
    if (typeof peer !== "string") return { label: id + " (missing)", classes: "missing", kind: "missing", broken: true };
    if (PEER_BROKEN.has(peer)) return { label: id + " (" + PEER_BROKEN.get(peer) + ")", classes: "missing", kind: "missing", broken: true };
    return { label: id + " · " + peer, classes: "peer " + (PEER_SATISFIED.has(peer) ? "peer-done" : "peer-pending"), kind: "peer", broken: false };
  }

  // an `after` entry in words (run detail): "a", "ghost (missing)", "shop-api:design-api · done",
  // "shop-api:typo (no such task)"
  function blockerText(node, id) {
    return S.graph && S.graph.nodes.has(id) ? id : blockerLook(node, id).label;
  }

  // a done task that landed without its tests having run: "done (unverified)", and why
  function unverifiedWhy(node) {
    if (node.status !== "done" || !node.unverified) return null;
    return typeof node.unverified === "string" ? node.unverified : "the tests did not run";
  }

  function visibleNodes() {
    const nodes = S.graph ? [...S.graph.nodes.values()] : [];
    if ($("show-all").checked || nodes.length <= TRIM_ABOVE) return { nodes, trimmed: false, total: nodes.length };
    // the active neighbourhood: ready and running tasks, what they wait on, what waits on them
    const keep = new Set();
    const dependents = new Map();
    for (const n of nodes) for (const b of n.after) { if (!dependents.has(b)) dependents.set(b, []); dependents.get(b).push(n.id); }
    for (const n of nodes) {
      if (n.status !== "in-progress" && !n.ready && n.status !== "failed") continue;
      keep.add(n.id);
      for (const b of n.after) keep.add(b);
      for (const d of dependents.get(n.id) || []) keep.add(d);
    }
    return { nodes: nodes.filter((n) => keep.has(n.id)), trimmed: true, total: nodes.length };
  }

  const CY_STYLE = [
    { selector: "node", style: { "background-color": "#8d98a6", label: "data(label)", color: "#e3e8ee", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3, width: 16, height: 16, "text-max-width": 140, "text-wrap": "ellipsis" } },
    { selector: "node.running", style: { "background-color": "#4c9aff", "border-width": 3, "border-color": "#9ecbff", width: 22, height: 22 } },
    { selector: "node.ready", style: { "background-color": "#f2cc60", "border-width": 2, "border-color": "#fff3c4", width: 20, height: 20 } },
    { selector: "node.done", style: { "background-color": "#3fb871", opacity: 0.75 } },
    { selector: "node.unverified", style: { "background-color": "#e0a93b", "border-width": 2, "border-color": "#3fb871" } },
    { selector: "node.failed", style: { "background-color": "#e5534b", width: 20, height: 20 } },
    { selector: "node.abandoned", style: { "background-color": "#4a525c", opacity: 0.6 } },
    { selector: "node.blocked", style: { "background-color": "#55606e" } },
    { selector: "node.paused", style: { "background-color": "#9d7bd8" } },
    { selector: "node.missing", style: { "background-color": "#12161c", "border-width": 2, "border-style": "dashed", "border-color": "#e5534b", color: "#e5534b" } },
    { selector: "node.peer", style: { shape: "diamond", width: 18, height: 18, "border-width": 2 } },
    { selector: "node.peer-done", style: { "background-color": "#2d5a40", "border-color": "#3fb871", color: "#8fcfa8" } },
    { selector: "node.peer-pending", style: { "background-color": "#12161c", "border-color": "#e0a93b", color: "#e0a93b" } },
    { selector: "node.repo", style: { shape: "round-rectangle", width: 26, height: 18, "font-size": 11 } },
    { selector: "node.t-healthy", style: { "background-color": "#3fb871" } },
    { selector: "node.t-watch", style: { "background-color": "#e0a93b" } },
    { selector: "node.t-at-risk", style: { "background-color": "#e5534b" } },
    { selector: "node.alive", style: { "border-width": 3, "border-color": "#4c9aff" } },
    { selector: "node:selected", style: { "overlay-opacity": 0.2, "overlay-color": "#9ecbff" } },
    { selector: "edge", style: { width: 1.2, "line-color": "#3a4552", "target-arrow-color": "#3a4552", "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.8 } },
    { selector: "edge.active", style: { width: 2.4, "line-color": "#4c9aff", "target-arrow-color": "#4c9aff" } },
    { selector: "edge.broken", style: { "line-style": "dashed", "line-color": "#e5534b", "target-arrow-color": "#e5534b" } },
    { selector: "edge.inferred", style: { "line-style": "dashed" } },
  ];

  function ensureCy() {
    if (S.cy || typeof cytoscape !== "function") return S.cy;
    S.cy = cytoscape({ container: $("cy"), style: CY_STYLE, wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 4, boxSelectionEnabled: false });
    S.cy.on("tap", "node", (event) => {
      const data = event.target.data();
      if (data.kind === "repo") focusRepo(data.id, false);
      else if (data.kind === "task") SR.openRun(S.graph.repo, data.taskId);
    });
    return S.cy;
  }

  function layoutFor(count) {
    let name = $("layout").value;
    if (name === "auto") name = count > DAGRE_MAX ? "breadthfirst" : "dagre";
    const options = { name, fit: true, padding: 20, animate: false };
    if (name === "dagre") Object.assign(options, { rankDir: "LR", nodeSep: 18, rankSep: 60 });
    if (name === "breadthfirst") Object.assign(options, { directed: true, spacingFactor: 0.9 });
    return options;
  }

  function renderRepoGraph() {
    renderTaskList();
    const cy = ensureCy();
    const note = $("graph-note");
    if (!S.graph || S.graph.repo !== S.focused) { if (cy) cy.elements().remove(); note.textContent = S.focused ? "loading…" : ""; return; }
    if (!S.graph.hasGraph) { if (cy) cy.elements().remove(); note.textContent = S.focused + " has no task graph"; return; }
    const { nodes, trimmed, total } = visibleNodes();
    note.textContent = trimmed ? "showing " + nodes.length + " of " + total + " tasks (the active neighbourhood); tick \"show all\" for the rest" : total + " tasks";
    if (!cy) return;
    const ids = new Set(nodes.map((n) => n.id));
    const elements = [];
    const outside = new Set();  // blockers not in this graph: peer tasks and missing ones
    for (const n of nodes) {
      elements.push({ group: "nodes", data: { id: "t:" + n.id, label: n.title.length > 40 ? n.title.slice(0, 39) + "…" : n.title, kind: "task", taskId: n.id }, classes: nodeClass(n) });
    }
    for (const n of nodes) {
      for (const b of n.after) {
        const inGraph = S.graph.nodes.has(b);
        const look = inGraph ? null : blockerLook(n, b);
        if (look && !outside.has(b)) {
          outside.add(b);
          elements.push({ group: "nodes", data: { id: "t:" + b, label: look.label, kind: look.kind }, classes: look.classes });
        }
        if (!inGraph || ids.has(b)) {
          const target = S.graph.nodes.get(n.id);
          const active = target && (target.status === "in-progress" || target.ready);
          elements.push({ group: "edges", data: { id: "e:" + b + "->" + n.id, source: "t:" + b, target: "t:" + n.id }, classes: look && look.broken ? "broken" : active ? "active" : "" });
        }
      }
    }
    cy.batch(() => { cy.elements().remove(); cy.add(elements); });
    runLayout(cy, elements.length);
  }

  function runLayout(cy, count) {
    const layout = cy.layout(layoutFor(count));
    // a handful of nodes would otherwise be zoomed to fill the whole panel
    layout.one("layoutstop", () => { if (cy.zoom() > MAX_FIT_ZOOM) { cy.zoom(MAX_FIT_ZOOM); cy.center(); } });
    layout.run();
  }

  function restyleNodes(changed) {
    const cy = S.cy;
    if (!cy) return;
    for (const n of changed) {
      const node = cy.getElementById("t:" + n.id);
      if (node.empty()) continue;
      node.classes(nodeClass(n));
      node.data("label", n.title.length > 40 ? n.title.slice(0, 39) + "…" : n.title);
      const active = n.status === "in-progress" || n.ready;
      node.incomers("edge").forEach((edge) => { if (!edge.hasClass("broken")) edge.classes(active ? "active" : ""); });
      for (const b of Object.keys(n.peers || {})) {  // a peer task's status moved: its node and edge follow
        if (S.graph.nodes.has(b)) continue;
        const look = blockerLook(n, b);
        const peer = cy.getElementById("t:" + b);
        if (!peer.empty()) { peer.classes(look.classes); peer.data({ label: look.label, kind: look.kind }); }
        const edge = cy.getElementById("e:" + b + "->" + n.id);
        if (!edge.empty()) edge.classes(look.broken ? "broken" : active ? "active" : "");
      }
    }
  }

  const STATUS_RANK = { "in-progress": 0, failed: 2, open: 3, blocked: 3, incomplete: 3, waiting: 4, done: 6, abandoned: 7 };

  function renderTaskList() {
    const list = $("task-list");
    const more = $("tasks-more");
    if (S.view !== "repo" || !S.graph || S.graph.repo !== S.focused) { list.replaceChildren(); more.hidden = true; return; }
    const nodes = visibleNodes().nodes.slice().sort((a, b) =>
      ((a.ready ? 1 : STATUS_RANK[a.status] ?? 5) - (b.ready ? 1 : STATUS_RANK[b.status] ?? 5)) || a.id.localeCompare(b.id));
    const shown = nodes.slice(0, S.taskLimit);
    keepFocus(list, () => list.replaceChildren(...shown.map((n) => {
      const status = n.status === "in-progress" ? "in-progress" : n.ready ? "ready" : n.status;
      const why = unverifiedWhy(n);
      const shown = why ? "done (unverified)" : status;
      return el("li", { "data-task": n.id, "data-status": status, "data-unverified": why ? "true" : null },
        el("button", { type: "button", title: why ? n.title + " — unverified: " + why : n.title, "aria-label": n.id + ", " + shown + ": " + n.title + ". Open run detail.", onclick: () => SR.openRun(S.graph.repo, n.id) },
          el("span", { class: "st st-" + status + (why ? " st-unverified" : ""), text: shown }),
          el("span", { class: "tid", text: n.id + " — " + n.title })));
    })));
    more.hidden = nodes.length <= shown.length;
    more.textContent = "show more (" + (nodes.length - shown.length) + " hidden)";
  }

  function renderEcoGraph() {
    renderTaskList();
    const cy = ensureCy();
    $("graph-note").textContent = S.cards.size + " repos · " + S.edges.length + " dependencies (arrow: depends on)";
    if (!cy) return;
    const elements = [];
    for (const name of S.order) {
      const card = S.cards.get(name);
      if (!card) continue;
      elements.push({ group: "nodes", data: { id: name, label: name, kind: "repo" }, classes: ecoClasses(card) });
    }
    for (const edge of S.edges) {
      if (!S.cards.has(edge.source) || !S.cards.has(edge.target)) continue;
      elements.push({ group: "edges", data: { id: "r:" + edge.source + "->" + edge.target, source: edge.source, target: edge.target }, classes: edge.kind === "inferred" ? "inferred" : "" });
    }
    cy.batch(() => { cy.elements().remove(); cy.add(elements); });
    runLayout(cy, elements.length);
  }

  function ecoClasses(card) {
    const alive = card.activity === "active" || (card.tasks && card.tasks.running > 0);
    return "repo" + (card.tier ? " t-" + card.tier : "") + (alive ? " alive" : "");
  }

  function updateEcoStyles() {
    if (!S.cy) return;
    for (const card of S.cards.values()) {
      const node = S.cy.getElementById(card.name);
      if (!node.empty()) node.classes(ecoClasses(card));
    }
  }

  Object.assign(SR, { unverifiedWhy, blockerText });
  Object.assign(SR, { focusRepo, selectView, fetchGraph, applyGraphDelta, renderRepoGraph, renderTaskList, renderEcoGraph, updateEcoStyles });
})();
