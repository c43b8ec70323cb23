/* Sections 1-3: narrated overview, operational overview (metrics, sparklines), repo cards. */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, el, keepFocus, trendArrow, CARD_PAGE } = SR;

  function renderOverview() {
    const o = S.overview;
    const badge = $("mode-badge");
    if (o.plan_only === true) { badge.className = "badge mode-observe"; badge.textContent = "OBSERVE · plan only"; }
    else if (o.plan_only === false) { badge.className = "badge mode-execute"; badge.textContent = "EXECUTE"; }
    else { badge.className = "badge mode-unknown"; badge.textContent = "mode unknown"; }
    $("cycle-info").textContent = o.cycle_id ? "cycle " + o.cycle_id + " · " + (o.generated_at || "") : "no cycle recorded yet";
    const tasks = o.tasks || {};
    let text = o.narrative;
    if (!text) {
      text = o.cycle_id ? "" : "No hub cycle yet: showing live task graphs. ";
      text += (o.repos || 0) + " repos; " + (tasks.ready || 0) + " tasks ready, " + (tasks.running || 0) + " running.";
    }
    // the narrative may come as paragraphs or a list (control/assess/narrative.py): kept as such
    $("narrative-text").replaceChildren(SR.markdown(text));
    const hints = $("hints");
    hints.replaceChildren(...(o.hints || []).slice(0, 4).map((hint) => el("li", { text: hint })));
    // runtimes paused machine-wide (usage limit, auth, failed preflight): who, until when, the fix
    $("pauses").replaceChildren(...(o.pauses || []).map((p) => el("li", { class: "pause" + (p.needs_human ? " needs-human" : ""), "data-runtime": p.runtime },
      el("strong", { text: p.needs_human ? "Waiting on a human: " : "Paused: " }), p.text,
      p.fix ? el("span", { class: "pause-fix", text: " — fix: " + p.fix }) : null,
      " ", el("code", { text: p.resume }))));
    const activity = o.activity || {};
    const tiers = o.tiers || {};
    $("totals").textContent = [
      (o.repos || 0) + " repos",
      (activity.active || 0) + " active", (activity.stalled || 0) + " stalled",
      (tiers["at-risk"] || 0) + " at-risk", (tiers.watch || 0) + " watch", (tiers.healthy || 0) + " healthy",
      (tasks.ready || 0) + " ready", (tasks.running || 0) + " running", (tasks.failed || 0) + " failed",
      (tasks.total || 0) + " tasks",
    ].join(" · ");
  }

  function sparkline(points) {
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 100 28");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    if (points.length > 1) {
      const min = Math.min(...points), max = Math.max(...points);
      const span = max - min;
      const line = document.createElementNS(svgNS, "polyline");
      line.setAttribute("points", points.map((v, i) =>
        (i * 100 / (points.length - 1)).toFixed(1) + "," + (span ? 26 - ((v - min) / span) * 24 : 14).toFixed(1)).join(" "));
      svg.append(line);
    }
    return svg;
  }

  function renderMetrics() {
    const box = $("metrics");
    const keys = Object.keys(S.metrics);
    if (!keys.length) {
      box.replaceChildren(el("p", { class: "muted", text: "Metrics appear after the first cycle." }));
      return;
    }
    box.replaceChildren(...keys.map((key) => {
      const m = S.metrics[key];
      const delta = m.delta === null || m.delta === undefined ? "" : (m.delta > 0 ? "+" : "") + Number(m.delta).toFixed(1);
      return el("div", { class: "metric", tabindex: 0, "aria-label": m.label + " " + Number(m.value).toFixed(1) + ", " + m.tier + ", " + m.trend + ". Formula: " + (m.formula || "") },
        el("div", { class: "label", text: m.label }),
        el("div", {},
          el("span", { class: "value", text: Number(m.value).toFixed(1) }),
          el("span", { class: "badge tier-" + m.tier, text: m.tier }),
          el("span", { class: "trend", text: trendArrow(m.trend) + " " + m.trend + (delta ? " (" + delta + ")" : "") })),
        sparkline(m.history || []),
        m.formula ? el("div", { class: "formula", text: m.formula }) : null);
    }));
  }

  // ------------------------------------------------------------------ section 3: cards

  function cardMatches(card) {
    const search = $("f-search").value.trim().toLowerCase();
    const tier = $("f-tier").value, tag = $("f-tag").value;
    if (tier && card.tier !== tier) return false;
    if (tag && !(card.tags || []).includes(tag)) return false;
    if ($("f-stalled").checked && card.activity !== "stalled") return false;
    if ($("f-dirty").checked && !card.dirty) return false;
    if ($("f-risk").checked && !["critical", "high", "medium"].includes(card.risk)) return false;
    if (search && !(card.name.toLowerCase().includes(search) || (card.tags || []).some((t) => t.toLowerCase().includes(search)))) return false;
    return true;
  }

  function renderTagOptions() {
    const select = $("f-tag");
    const current = select.value;
    const tags = new Set();
    for (const card of S.cards.values()) for (const tag of card.tags || []) tags.add(tag);
    const wanted = ["", ...[...tags].sort()];
    const have = [...select.options].map((o) => o.value);
    if (wanted.join("\u0000") === have.join("\u0000")) return;
    select.replaceChildren(...wanted.map((t) => el("option", { value: t, text: t || "any tag" })));
    select.value = wanted.includes(current) ? current : "";
  }

  function cardNode(card) {
    const alive = card.activity === "active" || (card.tasks && card.tasks.running > 0);
    const classes = ["card", card.tier ? "t-" + card.tier : "", alive ? "alive" : "", card.activity === "stalled" ? "stalled" : "", S.focused === card.name ? "focused" : ""];
    const t = card.tasks || {};
    const score = card.score === null || card.score === undefined ? "–" : card.score;
    const node = el("article", {
      class: classes.join(" "), role: "listitem", tabindex: 0, "data-repo": card.name,
      "aria-label": card.name + ", " + (card.tier || "not scored") + ", " + (card.activity || "") + (card.stall ? ", stalled: " + card.stall : "") + ". Press Enter to focus its graph.",
      onclick: () => SR.focusRepo(card.name, true),
      onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); SR.focusRepo(card.name, true); } },
    },
      el("div", { class: "top" },
        el("span", { class: "name", title: card.path }, el("span", { class: "dot", "aria-hidden": "true" }), card.name),
        el("span", { class: "badge" + (card.tier ? " tier-" + card.tier : ""), title: "score " + score + "; attention priority " + (card.priority ?? "–") },
          (card.tier || "unscored") + " " + score + " " + trendArrow(card.trend))),
      el("div", { class: "line" },
        (card.activity || "no cycle yet") + " · " + (t.ready || 0) + " ready · " + (t.running || 0) + " running · " + (t.total || 0) + " tasks"),
      card.stall ? el("div", { class: "stall", text: "stalled: " + card.stall }) : null,
      !card.stall && card.reasons && card.reasons.length ? el("div", { class: "line", text: card.reasons[0] }) : null,
      card.errors && card.errors.length ? el("div", { class: "stall", text: card.errors[0] }) : null,
      el("div", { class: "row" },
        card.dirty ? el("span", { class: "badge", title: "uncommitted files", text: card.dirty + " dirty" }) : null,
        card.risk && card.risk !== "none" ? el("span", { class: "badge risk-" + card.risk, text: "risk " + card.risk }) : null,
        card.priority !== null && card.priority !== undefined ? el("span", { class: "badge", title: "attention priority (100 - score)", text: "prio " + card.priority }) : null,
        el("button", { type: "button", class: "mode-btn", "aria-label": "Change control mode of " + card.name, title: card.lease_owner ? "lease: " + card.lease_owner + (card.lease_expires_at ? " until " + card.lease_expires_at : "") : "no lease",
          onclick: (event) => { event.stopPropagation(); SR.openModeDialog(card.name); } }, "mode: " + (card.mode || "observe")),
        ...(card.tags || []).slice(0, 3).map((tag) => el("span", { class: "badge muted", text: tag }))));
    return node;
  }

  function renderCards() {
    renderTagOptions();
    const visible = S.order.map((name) => S.cards.get(name)).filter((card) => card && cardMatches(card));
    const shown = visible.slice(0, S.cardLimit);
    keepFocus($("cards"), () => $("cards").replaceChildren(...shown.map(cardNode)));
    $("repo-count").textContent = "(" + visible.length + (visible.length !== S.cards.size ? " of " + S.cards.size : "") + ")";
    const more = $("cards-more");
    more.hidden = visible.length <= shown.length;
    more.textContent = "show more (" + (visible.length - shown.length) + " hidden)";
    if ($("tab-repo").getAttribute("aria-selected") === "true") $("focused-name").textContent = S.focused || "none";
  }

  Object.assign(SR, { renderOverview, renderMetrics, renderCards });
})();
