/* speedrift operator dashboard. Plain JS, no build step; cytoscape + dagre are vendored.
 *
 * Data flow: /ws/status sends a snapshot (seq n) and then deltas n+1, n+2, ...; a gap makes us ask
 * for a resync. Task graphs are fetched per repo (/api/repos/<name>/graph, tagged with the seq they
 * are current at) and graph deltas for the focused repo are applied on top. Prompts are fetched
 * from /api/queues whenever the queues change, so copying never waits on the network.
 * All text from the server goes into the DOM as text (textContent), never as HTML.
 */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, CARD_PAGE, TASK_PAGE, readToken, checkToken, renderOverview, renderMetrics, renderCards, focusRepo, selectView, fetchGraph, applyGraphDelta, renderRepoGraph, renderTaskList, renderEcoGraph, updateEcoStyles, loadPrompts, renderQueues, submitMode } = SR;

  // ------------------------------------------------------------------ websocket

  function setConn(state, text) {
    const badge = $("conn");
    badge.className = "badge conn-" + state;
    badge.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(scheme + "://" + location.host + "/ws/status");
    S.ws = ws;
    S.waitingSnapshot = true;
    ws.onopen = () => {
      if (S.token) ws.send(JSON.stringify({ type: "auth", token: S.token }));
      setConn("live", "live");
      S.backoff = 500;
    };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      handle(message);
    };
    ws.onclose = (event) => {
      if (S.ws !== ws) return;
      const why = event.code === 4401 ? "token required" : event.code === 4403 ? "token rejected" : "reconnecting…";
      setConn("down", why);
      setTimeout(connect, S.backoff);
      S.backoff = Math.min(S.backoff * 2, 10000);
    };
  }

  function resync() {
    S.resyncs += 1;
    S.waitingSnapshot = true;
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify({ type: "resync" }));
  }

  function handle(message) {
    if (message.type === "snapshot") {
      S.waitingSnapshot = false;
      applySnapshot(message);
      return;
    }
    if (message.type !== "delta" || S.waitingSnapshot) return;
    if (message.seq <= S.seq) return;            // already part of what we hold
    if (message.seq !== S.seq + 1) { resync(); return; }  // a gap: we missed something
    S.seq = message.seq;
    applyDelta(message);
  }

  function applySnapshot(snapshot) {
    S.seq = snapshot.seq;
    S.overview = snapshot.overview || {};
    S.metrics = snapshot.metrics || {};
    S.cards = new Map((snapshot.cards || []).map((card) => [card.name, card]));
    S.order = (snapshot.cards || []).map((card) => card.name);
    S.edges = snapshot.edges || [];
    S.queues = snapshot.queues || {};
    renderAll();
    loadPrompts();
    if (!S.focused && S.order.length) focusRepo(S.order[0], false);
    else if (S.focused) fetchGraph(S.focused);
    if (S.view === "all") SR.scheduleAllRefresh();
    if (!S.rendered) {
      S.rendered = true;
      document.body.dataset.ready = "1";
      if (window.performance && performance.mark) performance.mark("speedrift-first-render");
    }
  }

  function applyDelta(delta) {
    if (delta.overview) { S.overview = delta.overview; renderOverview(); }
    if (delta.metrics) { S.metrics = delta.metrics; renderMetrics(); }
    let cardsChanged = false;
    for (const card of delta.cards || []) { S.cards.set(card.name, card); cardsChanged = true; }
    for (const name of delta.removed_cards || []) { S.cards.delete(name); cardsChanged = true; }
    if (delta.order) { S.order = delta.order; cardsChanged = true; }
    if (cardsChanged) renderCards();
    if (delta.edges) { S.edges = delta.edges; if (S.view === "eco") renderEcoGraph(); }
    if (delta.queues) { S.queues = delta.queues; renderQueues(); loadPrompts(); }
    else if (delta.queues_prompts_changed) loadPrompts();
    if (delta.graph) applyGraphDelta(delta.seq, delta.graph);
    if (cardsChanged && S.view === "eco") updateEcoStyles();
  }

  function renderAll() {
    renderOverview();
    renderMetrics();
    renderCards();
    renderQueues();
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    readToken();
    checkToken();
    for (const id of ["f-search", "f-tier", "f-tag", "f-stalled", "f-dirty", "f-risk"]) {
      $(id).addEventListener("input", () => { S.cardLimit = CARD_PAGE; renderCards(); });
    }
    $("cards-more").addEventListener("click", () => { S.cardLimit += CARD_PAGE; renderCards(); });
    $("tasks-more").addEventListener("click", () => { S.taskLimit += TASK_PAGE; renderTaskList(); });
    $("tab-repo").addEventListener("click", () => selectView("repo"));
    $("tab-eco").addEventListener("click", () => selectView("eco"));
    $("tab-all").addEventListener("click", () => selectView("all"));
    $("show-all").addEventListener("change", () => renderRepoGraph());
    $("layout").addEventListener("change", () => (S.view === "eco" ? renderEcoGraph() : S.view === "all" ? SR.renderAllGraph() : renderRepoGraph()));
    $("fit").addEventListener("click", () => SR.fitView());
    $("mode-form").addEventListener("submit", submitMode);
    for (const button of document.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => $(button.dataset.close).close());
    }
    connect();
  }

  // for tests and debugging: read-only views of the live state
  window.speedrift = {
    seq: () => S.seq,
    focused: () => S.focused,
    graphNodes: () => (S.graph ? [...S.graph.nodes.values()] : []),
    cyNodes: () => (S.cy ? S.cy.nodes().map((n) => ({ id: n.id(), classes: n.classes() })) : []),
    // rendered label boxes of the childless nodes (the layout test checks they do not overlap)
    cyBoxes: () => (S.cy ? S.cy.nodes().filter((n) => !n.isParent()).map((n) => ({ id: n.id(), parent: n.data("parent") || null, box: n.boundingBox({ includeLabels: true, includeOverlays: false }) })) : []),
    cyEdges: () => (S.cy ? S.cy.edges().map((e) => ({ id: e.id(), source: e.source().id(), target: e.target().id(), classes: e.classes() })) : []),
    view: () => S.view,
    zoom: () => (S.cy ? S.cy.zoom() : null),
    resyncs: () => S.resyncs,
    inject: (message) => handle(message),  // feed a message as if it came from the server
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
