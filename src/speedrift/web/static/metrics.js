/* speedrift flow metrics page: /api/metrics (what `speedrift metrics --json` prints) drawn as inline SVG.
   Every chart shows its numbers and formula; text goes in through text nodes only (repo names and
   failure classes come from disk). Loaded after core.js (SR.el, SR.api, SR.readToken). */
(function () {
  "use strict";

  const SR = window.SR;
  const el = SR.el;
  const NS = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 30000;
  const PALETTE = ["#e5534b", "#e0a93b", "#4c9aff", "#b083f0", "#3fb871", "#f2cc60", "#ec6cb9", "#56d4dd", "#8d98a6", "#ff8c42"];
  const state = { data: null, scope: "", since: "7d", timer: null };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 90) return Math.round(seconds) + "s";
    if (seconds < 5400) return (seconds / 60).toFixed(1) + "m";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + "h";
    return (seconds / 86400).toFixed(1) + "d";
  }

  function rate(value) { return value === null || value === undefined ? "—" : value.toFixed(1) + "%"; }

  function money(value) { return value === null || value === undefined ? "—" : "$" + value.toFixed(4); }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function scopeData() {
    const data = state.data;
    if (!data) return null;
    return state.scope && data.repos[state.scope] ? data.repos[state.scope] : data.ecosystem;
  }

  // ------------------------------------------------------------------ figures

  function figure(key, name, value, inputs, formula) {
    return el("div", { class: "figure", "data-figure": key },
      el("div", { class: "name" }, name),
      el("div", { class: "value", "data-role": "value" }, value),
      el("div", { class: "inputs mmuted", "data-role": "inputs" }, inputs),
      el("p", { class: "formula" }, formula));
  }

  function inputsText(inputs) {
    return Object.entries(inputs).map(([k, v]) => k.replace(/_/g, " ") + " " + v).join(" · ");
  }

  function renderFigures(m) {
    const box = SR.$("figures");
    clear(box);
    const esc = m.escalations;
    const cost = m.cost_per_landed;
    box.append(
      figure("landed", m.landed.label, String(m.landed.value), inputsText(m.landed.inputs), m.landed.formula),
      figure("lead_time", m.lead_time.label, "p50 " + duration(m.lead_time.p50) + " · p95 " + duration(m.lead_time.p95),
        "n " + m.lead_time.count + " · " + inputsText(m.lead_time.inputs), m.lead_time.formula),
      figure("dispatch_latency", m.dispatch_latency.label,
        "p50 " + duration(m.dispatch_latency.p50) + " · p95 " + duration(m.dispatch_latency.p95),
        "n " + m.dispatch_latency.count + " · " + inputsText(m.dispatch_latency.inputs), m.dispatch_latency.formula),
      figure("first_attempt_success", m.first_attempt_success.label, rate(m.first_attempt_success.value),
        inputsText(m.first_attempt_success.inputs), m.first_attempt_success.formula),
      figure("merge_success", m.merge_success.label, rate(m.merge_success.value),
        inputsText(m.merge_success.inputs), m.merge_success.formula),
      figure("escalations", esc.label, esc.open + " open · " + esc.answered + " answered",
        "answer p50 " + duration(esc.time_to_answer.p50) + " · p95 " + duration(esc.time_to_answer.p95) +
        " (n " + esc.time_to_answer.count + ") · withdrawn " + esc.withdrawn, esc.formula),
      figure("cost_per_landed", cost.label,
        money(cost.value) + (cost.tokens === null ? "" : " · " + cost.tokens + " tokens"),
        inputsText(cost.inputs), cost.formula));
  }

  // ------------------------------------------------------------------ charts

  const TOP = 18, PLOT_H = 110, BOTTOM = 22, LEFT = 8, MIN_W = 480, MAX_W = 1200;

  function columnChart(container, columns, tickOf, keyName) {
    // columns: [{key, total, parts: [{name, count, color}]}]; the total is written above each column
    // (a zero only where there is room); drawn at its natural size, never scaled up (CSS max-width)
    clear(container);
    const n = Math.max(1, columns.length);
    const width = Math.min(MAX_W, Math.max(MIN_W, n * 30));
    const slot = (width - LEFT * 2) / n;
    const barW = Math.max(1, Math.min(40, slot * 0.72));
    const height = TOP + PLOT_H + BOTTOM;
    const max = Math.max(1, ...columns.map((c) => c.total));
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img", "aria-label": keyName });
    chart.append(svg("line", { class: "axis", x1: LEFT, x2: width - LEFT, y1: TOP + PLOT_H, y2: TOP + PLOT_H }));
    const every = Math.max(1, Math.ceil(44 / slot));
    columns.forEach((column, i) => {
      const x = LEFT + i * slot + (slot - barW) / 2;
      const middle = x + barW / 2;
      let y = TOP + PLOT_H;
      const group = svg("g", { "data-bucket": column.key, "data-total": column.total });
      for (const part of column.parts) {
        if (!part.count) continue;
        const h = Math.max(1, (part.count / max) * PLOT_H);
        y -= h;
        const rect = svg("rect", { x: x, y: y, width: barW, height: h, fill: part.color || null, class: part.color ? null : "bar" });
        rect.append(svg("title", {}, (part.name ? part.name + ": " : "") + part.count));
        group.append(rect);
      }
      if (column.total || slot >= 16) {
        group.append(svg("text", { class: "count", x: middle, y: y - 4, "text-anchor": "middle" }, column.total));
      }
      if (i % every === 0 || i === columns.length - 1) {
        group.append(svg("text", { class: "tick", x: middle, y: height - 6, "text-anchor": "middle" }, tickOf(column.key)));
      }
      chart.append(group);
    });
    container.append(chart);
  }

  function renderLanded(container, formulaBox, metric, tickOf) {
    const columns = metric.buckets.map((b) => ({ key: b.start, total: b.count, parts: [{ count: b.count }] }));
    columnChart(container, columns, tickOf, metric.label);
    formulaBox.textContent = metric.formula + " — " + inputsText(metric.inputs);
  }

  function classColor(classes, name) { return PALETTE[classes.indexOf(name) % PALETTE.length]; }

  function renderClasses(metric) {
    const classes = metric.classes;
    const columns = metric.days.map((d) => ({
      key: d.start, total: d.total,
      parts: classes.filter((c) => d.counts[c]).map((c) => ({ name: c, count: d.counts[c], color: classColor(classes, c) })),
    }));
    columnChart(SR.$("chart-classes"), columns, (start) => start.slice(5, 10), metric.label);
    const legend = SR.$("legend-classes");
    clear(legend);
    for (const c of classes) {
      legend.append(el("li", { "data-class": c, "data-count": metric.totals[c] },
        el("span", { class: "swatch", style: "background:" + classColor(classes, c) }), c + " " + metric.totals[c]));
    }
    if (!classes.length) legend.append(el("li", { class: "nodata" }, "no failed attempts in the window"));
    SR.$("f-classes").textContent = metric.formula + " — " + inputsText(metric.inputs);
  }

  function renderGates(metric) {
    const box = SR.$("chart-gates");
    clear(box);
    SR.$("f-gates").textContent = metric.formula + " — " + inputsText(metric.inputs);
    if (!metric.gates.length) {
      box.append(el("p", { class: "nodata" }, "no data: no gate ran in an attempt of the window (0 runs)"));
      return;
    }
    const rowH = 22, labelW = 90, barW = 320, textW = 150;
    const width = labelW + barW + textW;
    const height = metric.gates.length * rowH + 6;
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img", "aria-label": metric.label });
    metric.gates.forEach((g, i) => {
      const y = 4 + i * rowH;
      const row = svg("g", { "data-gate": g.gate, "data-value": g.value === null ? "" : g.value });
      row.append(svg("text", { class: "gate", x: 0, y: y + 13 }, g.gate));
      row.append(svg("rect", { class: "track", x: labelW, y: y + 2, width: barW, height: 14 }));
      row.append(svg("rect", { class: "rate-bar", x: labelW, y: y + 2, width: ((g.value || 0) / 100) * barW, height: 14 }));
      row.append(svg("text", { class: "rate", x: labelW + barW + 6, y: y + 13 },
        rate(g.value) + " (" + g.inputs.blocked + "/" + g.inputs.ran + ")"));
      chart.append(row);
    });
    box.append(chart);
  }

  // ------------------------------------------------------------------ per-repo table

  function repoRow(name, m, eco) {
    const esc = m.escalations;
    const cells = [
      name, String(m.landed.value),
      duration(m.lead_time.p50) + " / " + duration(m.lead_time.p95),
      duration(m.dispatch_latency.p50) + " / " + duration(m.dispatch_latency.p95),
      rate(m.first_attempt_success.value) + " (" + m.first_attempt_success.inputs.landed + "/" + m.first_attempt_success.inputs.first_attempts_ended + ")",
      rate(m.merge_success.value) + " (" + m.merge_success.inputs.merged + "/" + m.merge_success.inputs.landing_attempts + ")",
      esc.open + " / " + esc.answered,
      duration(esc.time_to_answer.p50) + " / " + duration(esc.time_to_answer.p95),
      money(m.cost_per_landed.value),
    ];
    return el("tr", { "data-repo": name, class: eco ? "eco" : null }, ...cells.map((c) => el("td", {}, c)));
  }

  function renderTable(data) {
    const body = SR.$("repo-rows");
    clear(body);
    body.append(repoRow("ecosystem", data.ecosystem, true));
    for (const name of Object.keys(data.repos).sort()) body.append(repoRow(name, data.repos[name], false));
  }

  // ------------------------------------------------------------------ page

  function renderScopes(data) {
    const select = SR.$("scope");
    const names = Object.keys(data.repos).sort();
    const current = Array.from(select.options).map((o) => o.value).slice(1);
    if (current.join("\n") !== names.join("\n")) {
      while (select.options.length > 1) select.remove(1);
      for (const name of names) select.append(el("option", { value: name }, name));
    }
    if (state.scope && !data.repos[state.scope]) state.scope = "";
    select.value = state.scope;
  }

  function render() {
    const data = state.data;
    const m = scopeData();
    if (!data || !m) return;
    SR.$("window").textContent = (state.scope ? "repo " + state.scope : "ecosystem") + " · from " + data.window.start + " to " + data.window.end;
    SR.$("problems").textContent = data.problems.map((p) => p.repo + ": " + p.problem).join(" · ");
    renderFigures(m);
    renderLanded(SR.$("chart-hour"), SR.$("f-hour"), m.landed_per_hour, (start) => start.slice(11, 13) + "h");
    renderLanded(SR.$("chart-day"), SR.$("f-day"), m.landed_per_day, (start) => start.slice(5, 10));
    renderClasses(m.failure_classes);
    renderGates(m.gate_failure_rates);
    renderTable(data);
    document.body.setAttribute("data-scope", state.scope || "ecosystem");
  }

  async function load() {
    const status = SR.$("mstatus");
    try {
      const data = await SR.api("/api/metrics?since=" + encodeURIComponent(state.since));
      state.data = data;
      renderScopes(data);
      render();
      status.textContent = "updated " + new Date().toLocaleTimeString();
      document.body.setAttribute("data-ready", "1");
      document.body.setAttribute("data-since", state.since);
    } catch (error) {
      status.textContent = "could not load: " + error.message;
    }
  }

  function start() {
    SR.readToken();
    SR.$("scope").addEventListener("change", (event) => { state.scope = event.target.value; render(); });
    SR.$("since").addEventListener("change", (event) => { state.since = event.target.value; load(); });
    load();
    state.timer = setInterval(load, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
