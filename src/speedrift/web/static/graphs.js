/* Section 4: three graph views — the focused repo's task graph, all repos' task graphs together (one
 * box per repo, cross-repo REPO:TASK edges drawn), the inter-repo graph — and the task list
 * (cytoscape + dagre). Nodes are sized from their labels and titles wrap, so labels never overlap. */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, el, api, keepFocus, renderCards, TASK_PAGE, TRIM_ABOVE, DAGRE_MAX, MAX_FIT_ZOOM } = SR;
  const ALL_LIMIT = 400;  // nodes the all-repos view asks for (the server caps and says how many it left out)
  const VIEWS = ["repo", "all", "eco"];

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
    for (const name of VIEWS) $("tab-" + name).setAttribute("aria-selected", String(view === name));
    $("focused-name").textContent = S.focused || "none";
    $("show-all").disabled = view !== "repo";
    // the legend that matches the colours: task status for task graphs, tier for the inter-repo view
    $("legend-tasks").hidden = view === "eco";
    $("legend-tiers").hidden = view !== "eco";
    $("tasks-heading").hidden = view !== "repo";
    $("task-list").hidden = view !== "repo";
    if (view === "eco") renderEcoGraph();
    else if (view === "all") { renderAllGraph(); fetchAllGraphs(); }
    else renderRepoGraph();
  }

  // ------------------------------------------------------------------ all repos together

  async function fetchAllGraphs() {
    const token = {};
    S.allFetch = token;
    try {
      const data = await api("/api/graph/tasks?limit=" + ALL_LIMIT);
      if (S.allFetch !== token) return;
      S.allGraphs = data;
      if (S.view === "all") renderAllGraph();
    } catch (error) {
      if (S.allFetch === token && S.view === "all") $("graph-note").textContent = "graphs unavailable: " + error.message;
    } finally {
      if (S.allFetch === token) S.allFetch = null;
    }
  }

  // a graph change in any repo: refetch the all-repos view at most every two seconds
  function scheduleAllRefresh() {
    if (S.view !== "all" || S.allTimer) return;
    S.allTimer = setTimeout(() => { S.allTimer = null; if (S.view === "all") fetchAllGraphs(); }, 2000);
  }

  function renderAllGraph() {
    const cy = ensureCy();
    const data = S.allGraphs;
    const note = $("graph-note");
    if (!data) { if (cy) cy.elements().remove(); note.textContent = "loading…"; return; }
    const repos = data.repos.filter((r) => r.nodes.length);
    note.textContent = (data.shown < data.total ? "showing " + data.shown + " of " + data.total + " tasks (the most active first)" : data.total + " tasks")
      + " in " + repos.length + " repos · purple: a REPO:TASK dependency between repos";
    if (!cy) return;
    const shown = new Set();
    for (const r of repos) for (const n of r.nodes) shown.add(r.repo + ":" + n.id);
    const elements = [];
    for (const r of repos) {
      elements.push({ group: "nodes", data: sized({ id: "r:" + r.repo, label: r.repo + (r.nodes.length < r.total ? " (" + r.nodes.length + " of " + r.total + ")" : ""), kind: "repo-box", repo: r.repo }, 13, true), classes: "repo-box" });
      for (const n of r.nodes) {
        elements.push({ group: "nodes", data: sized({ id: "a:" + r.repo + ":" + n.id, parent: "r:" + r.repo, label: n.title, full: n.id + " — " + n.title, kind: "task", repo: r.repo, taskId: n.id }), classes: nodeClass(n) });
      }
    }
    for (const r of repos) {
      for (const n of r.nodes) {
        for (const b of n.after) {
          const local = r.repo + ":" + b;
          const source = shown.has(local) ? local : shown.has(b) ? b : null;  // a local blocker, else REPO:TASK
          if (source === null) continue;
          elements.push({ group: "edges", data: { id: "ae:" + source + "->" + r.repo + ":" + n.id, source: "a:" + source, target: "a:" + r.repo + ":" + n.id }, classes: source === local ? "" : "cross" });
        }
      }
    }
    cy.batch(() => { cy.elements().remove(); cy.add(elements); });
    runLayout(cy, elements.length);
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
    scheduleAllRefresh();
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
      // a new title resizes its box: laid out again so boxes cannot come to overlap
      if (!old || old.after.join("\u0000") !== node.after.join("\u0000") || old.title !== node.title) structural = true;
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

  // nodes are boxes sized by their wrapped labels (measured here with the font cytoscape draws
  // with): the layout spaces the boxes, so labels cannot overlap nodes or each other
  const FONT_FAMILY = "system-ui, sans-serif";
  const WRAP_AT = 170, SLACK = 8, PAD = 7, LINE = 1.3;  // SLACK: cytoscape's own measure may differ a little
  let measurer = null;

  // the label wrapped here (greedy, at WRAP_AT; a word longer than that is cut into pieces) so the
  // lines cytoscape draws are exactly the lines measured for the box
  function wrapLabel(text, size, bold) {
    if (!measurer) measurer = document.createElement("canvas").getContext("2d");
    measurer.font = (bold ? "bold " : "") + size + "px " + FONT_FAMILY;
    const width = (t) => measurer.measureText(t).width;
    const pieces = [];
    for (const word of String(text).split(/\s+/).filter(Boolean)) {
      let rest = word;
      while (width(rest) > WRAP_AT && rest.length > 1) {
        let cut = rest.length - 1;
        while (cut > 1 && width(rest.slice(0, cut)) > WRAP_AT) cut -= 1;
        pieces.push(rest.slice(0, cut));
        rest = rest.slice(cut);
      }
      pieces.push(rest);
    }
    const lines = [];
    let line = "";
    for (const piece of pieces) {
      const next = line ? line + " " + piece : piece;
      if (line && width(next) > WRAP_AT) { lines.push(line); line = piece; } else line = next;
    }
    lines.push(line);
    const widest = Math.max(...lines.map(width), 10);
    return { text: lines.join("\n"), w: Math.ceil(widest + SLACK) + 2 * PAD, h: Math.ceil(lines.length * size * LINE) + 2 * PAD };
  }

  // a node's data with its wrapped label and its box size
  function sized(data, size, bold) {
    const box = wrapLabel(data.label, size || 11, bold);
    return Object.assign(data, { label: box.text, w: box.w, h: box.h });
  }

  const CY_STYLE = [
    { selector: "node", style: { shape: "round-rectangle", width: "data(w)", height: "data(h)", label: "data(label)", color: "#e3e8ee", "font-size": 11, "font-family": FONT_FAMILY,
      "line-height": LINE, "text-valign": "center", "text-halign": "center", "text-wrap": "wrap", "text-max-width": "10000px",
      "background-color": "#8d98a6", "background-opacity": 0.22, "border-width": 2, "border-color": "#8d98a6" } },
    { selector: "node.running", style: { "background-color": "#4c9aff", "border-color": "#9ecbff", "border-width": 3, "background-opacity": 0.35 } },
    { selector: "node.ready", style: { "background-color": "#f2cc60", "border-color": "#f2cc60", "border-width": 3 } },
    { selector: "node.done", style: { "background-color": "#3fb871", "border-color": "#3fb871" } },
    { selector: "node.unverified", style: { "background-color": "#e0a93b", "border-color": "#3fb871" } },
    { selector: "node.failed", style: { "background-color": "#e5534b", "border-color": "#e5534b", "border-width": 3 } },
    { selector: "node.abandoned", style: { "background-color": "#4a525c", "border-color": "#4a525c", opacity: 0.7 } },
    { selector: "node.blocked", style: { "background-color": "#55606e", "border-color": "#55606e" } },
    { selector: "node.paused", style: { "background-color": "#9d7bd8", "border-color": "#9d7bd8" } },
    { selector: "node.missing", style: { "background-color": "#12161c", "background-opacity": 1, "border-style": "dashed", "border-color": "#e5534b", color: "#ffb3ad" } },
    { selector: "node.peer", style: { shape: "cut-rectangle", "border-width": 2 } },
    { selector: "node.peer-done", style: { "background-color": "#2d5a40", "border-color": "#3fb871", color: "#8fcfa8" } },
    { selector: "node.peer-pending", style: { "background-color": "#12161c", "border-color": "#e0a93b", color: "#e0a93b" } },
    { selector: "node.repo", style: { "font-size": 13, "font-weight": "bold" } },
    { selector: "node.t-healthy", style: { "background-color": "#3fb871", "border-color": "#3fb871" } },
    { selector: "node.t-watch", style: { "background-color": "#e0a93b", "border-color": "#e0a93b" } },
    { selector: "node.t-at-risk", style: { "background-color": "#e5534b", "border-color": "#e5534b" } },
    { selector: "node.alive", style: { "border-width": 4, "border-color": "#4c9aff" } },
    { selector: "node.repo-box", style: { "background-color": "#9ecbff", "background-opacity": 0.04, "border-color": "#3a4552", "border-width": 1,
      "text-valign": "top", "text-halign": "center", "text-margin-y": -4, "font-size": 13, "font-weight": "bold", color: "#9ecbff", padding: "12px" } },
    { selector: "node:selected", style: { "overlay-opacity": 0.2, "overlay-color": "#9ecbff" } },
    { selector: "edge", style: { width: 1.4, "line-color": "#4a5562", "target-arrow-color": "#4a5562", "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.9 } },
    { selector: "edge.active", style: { width: 2.4, "line-color": "#4c9aff", "target-arrow-color": "#4c9aff" } },
    { selector: "edge.broken", style: { "line-style": "dashed", "line-color": "#e5534b", "target-arrow-color": "#e5534b" } },
    { selector: "edge.inferred", style: { "line-style": "dashed" } },
    { selector: "edge.cross", style: { width: 2, "line-color": "#9d7bd8", "target-arrow-color": "#9d7bd8", "line-style": "dashed" } },
  ];

  function ensureCy() {
    if (S.cy || typeof cytoscape !== "function") return S.cy;
    S.cy = cytoscape({ container: $("cy"), style: CY_STYLE, minZoom: 0.02, maxZoom: 6, boxSelectionEnabled: false });
    S.cy.on("tap", "node", (event) => {
      const data = event.target.data();
      if (data.kind === "repo" || data.kind === "repo-box") focusRepo(data.repo || data.id, false);
      else if (data.kind === "task") SR.openRun(data.repo || S.graph.repo, data.taskId);
    });
    // the whole title on hover (labels wrap, never cut; run detail has the rest)
    S.cy.on("mouseover", "node", (event) => { $("cy").title = event.target.data("full") || event.target.data("label") || ""; });
    S.cy.on("mouseout", "node", () => { $("cy").title = ""; });
    // wheel zoom of our own: cytoscape treats a mouse wheel's notch as about 3 % (nearly inert);
    // here a notch (deltaY 100) is about 14 %, a trackpad's small deltas stay smooth. Caught on
    // the way down (capture, on the section) so cytoscape's own wheel handler does not run too.
    $("graphs").addEventListener("wheel", (event) => {
      const cy = S.cy;
      if (!cy || !$("cy").contains(event.target)) return;
      event.preventDefault();
      event.stopPropagation();
      const delta = event.deltaY * (event.deltaMode === 1 ? 33 : event.deltaMode === 2 ? 400 : 1) * (event.ctrlKey ? 3 : 1);
      const factor = Math.min(2, Math.max(0.5, Math.pow(1.0015, -delta)));
      const rect = $("cy").getBoundingClientRect();
      cy.zoom({ level: cy.zoom() * factor, renderedPosition: { x: event.clientX - rect.left, y: event.clientY - rect.top } });
    }, { capture: true, passive: false });
    window.addEventListener("resize", () => { clearTimeout(S.resizeTimer); S.resizeTimer = setTimeout(() => { S.cy.resize(); fitView(); }, 200); });
    return S.cy;
  }

  function fitView() {
    const cy = S.cy;
    if (!cy || cy.elements().empty()) return;
    cy.fit(undefined, 24);
    // a handful of nodes would otherwise be blown up to fill the whole panel
    if (cy.zoom() > MAX_FIT_ZOOM) { cy.zoom(MAX_FIT_ZOOM); cy.center(); }
  }

  const TRY_BOTH_BELOW = 200;  // elements: below this, dagre runs left-right and top-down and keeps the larger fit

  function layoutFor(count, rankDir) {
    let name = $("layout").value;
    if (name === "auto") name = count > DAGRE_MAX ? "breadthfirst" : "dagre";
    const options = { name, fit: false, animate: false, nodeDimensionsIncludeLabels: true };
    // all repos: the repos' boxes are stacked nodeSep apart, and each box's name sits above it
    if (name === "dagre") Object.assign(options, { rankDir: rankDir || "LR", nodeSep: S.view === "all" ? 40 : 16, rankSep: 50, edgeSep: 8 });
    if (name === "breadthfirst") Object.assign(options, { directed: true, spacingFactor: 1.1, avoidOverlap: true });
    if (name === "grid") Object.assign(options, { avoidOverlap: true, avoidOverlapPadding: 12 });
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
      elements.push({ group: "nodes", data: sized({ id: "t:" + n.id, label: n.title, full: n.id + " — " + n.title, kind: "task", repo: S.graph.repo, taskId: n.id }), classes: nodeClass(n) });
    }
    for (const n of nodes) {
      for (const b of n.after) {
        const inGraph = S.graph.nodes.has(b);
        const look = inGraph ? null : blockerLook(n, b);
        if (look && !outside.has(b)) {
          outside.add(b);
          elements.push({ group: "nodes", data: sized({ id: "t:" + b, label: look.label, kind: look.kind }), classes: look.classes });
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

  // the zoom at which the laid-out graph fits the canvas: larger is more readable
  function fitZoom(cy) {
    const box = cy.elements().boundingBox();
    return Math.min((cy.width() - 48) / Math.max(box.w, 1), (cy.height() - 48) / Math.max(box.h, 1));
  }

  function runLayout(cy, count) {
    const options = layoutFor(count);
    if (options.name === "dagre" && count < TRY_BOTH_BELOW) {
      // a wide graph in a tall canvas (a phone) reads better top-down, a deep one left-right:
      // lay it out both ways and keep the one that fits at the larger zoom
      cy.layout(options).run();
      const across = fitZoom(cy);
      cy.layout(layoutFor(count, "TB")).run();
      if (fitZoom(cy) < across) cy.layout(options).run();
      fitView();
      return;
    }
    const layout = cy.layout(options);
    layout.one("layoutstop", fitView);
    layout.run();
  }

  function restyleNodes(changed) {
    const cy = S.cy;
    if (!cy) return;
    for (const n of changed) {
      const node = cy.getElementById("t:" + n.id);
      if (node.empty()) continue;
      node.classes(nodeClass(n));
      node.data(sized({ label: n.title, full: n.id + " — " + n.title }));
      const active = n.status === "in-progress" || n.ready;
      node.incomers("edge").forEach((edge) => { if (!edge.hasClass("broken")) edge.classes(active ? "active" : ""); });
      for (const b of Object.keys(n.peers || {})) {  // a peer task's status moved: its node and edge follow
        if (S.graph.nodes.has(b)) continue;
        const look = blockerLook(n, b);
        const peer = cy.getElementById("t:" + b);
        if (!peer.empty()) { peer.classes(look.classes); peer.data(sized({ label: look.label, kind: look.kind })); }
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
      elements.push({ group: "nodes", data: sized({ id: name, label: name, full: name + " · " + (card.tier || "not scored") + (card.score !== null && card.score !== undefined ? " " + card.score : ""), kind: "repo" }, 13, true), classes: ecoClasses(card) });
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
  Object.assign(SR, { focusRepo, selectView, fetchGraph, applyGraphDelta, renderRepoGraph, renderTaskList, renderEcoGraph, renderAllGraph, updateEcoStyles, fitView, scheduleAllRefresh });
})();
