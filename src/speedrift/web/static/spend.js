/* The Spend panel, inside the operational overview: today's spend by repo, agent and runtime, and
 * the daily budgets with what remains (/api/spend: the numbers `speedrift spend` prints and budget
 * admission refuses by). Read-only; refreshed every 30 s and whenever a new hub cycle arrives.
 * All text from the server goes into the DOM as text. */
(function () {
  "use strict";

  const SR = window.SR;
  const { $, el, api } = SR;
  const REFRESH_MS = 30000;
  const ROWS = 8;  // per breakdown: the costliest rows

  function usd(value) {
    const v = Number(value) || 0;
    return "$" + (v >= 1 || v === 0 ? v.toFixed(2) : v.toFixed(4));
  }

  function amount(value, unit) {
    return unit === "tokens" ? Math.round(Number(value) || 0).toLocaleString("en") + " tokens" : usd(value);
  }

  function breakdown(title, rows, names) {
    const keys = Object.keys(rows || {}).sort((a, b) => (rows[b].usd - rows[a].usd) || (rows[b].tokens - rows[a].tokens));
    if (!keys.length) return null;
    const head = el("tr", {}, el("th", { text: title }), el("th", { text: "usd" }), el("th", { text: "tokens" }), el("th", { text: "attempts" }));
    const body = keys.slice(0, ROWS).map((key) => el("tr", { "data-key": key },
      el("td", { text: (names && names[key]) || key, title: key }),
      el("td", { text: usd(rows[key].usd) }),
      el("td", { text: Number(rows[key].tokens).toLocaleString("en") }),
      el("td", { text: String(rows[key].attempts) })));
    return el("table", { class: "spend-table", "data-by": title }, el("thead", {}, head), el("tbody", {}, ...body));
  }

  function budgetItem(line) {
    const scope = line.scope_name || line.scope;
    const spent = line.remaining <= 0;
    return el("li", { class: "budget" + (spent ? " spent" : ""), "data-budget": line.budget, "data-unit": line.unit },
      el("strong", { text: line.budget.replace("_", " ") + " " }), scope + ": ",
      amount(line.spent, line.unit) + " of " + amount(line.limit, line.unit) + " spent, ",
      el("span", { class: "remaining", text: amount(line.remaining, line.unit) + " left" }),
      el("span", { class: "muted", text: " — set in " + line.where }));
  }

  function render(data) {
    const total = data.total || {};
    $("spend-total").textContent = usd(total.usd) + " · " + Number(total.tokens || 0).toLocaleString("en") +
      " tokens · " + (total.attempts || 0) + " attempts";
    const lines = data.budgets || [];
    $("spend-budgets").replaceChildren(...(lines.length ? lines.map(budgetItem)
      : [el("li", { class: "muted", text: "no daily budget set ([budgets] daily_usd in speedrift.toml or ecosystem.toml)" })]));
    const names = data.repo_names || {};
    $("spend-breakdowns").replaceChildren(...[
      breakdown("repo", data.by_repo, names), breakdown("agent", data.by_agent), breakdown("runtime", data.by_runtime),
    ].filter(Boolean));
    const notes = [...(data.problems || [])];
    if (data.unpriced_attempts) notes.push(data.unpriced_attempts + " attempt(s) used tokens with no known price ([prices] in speedrift.toml)");
    $("spend-note").textContent = notes.join(" · ");
  }

  async function loadSpend() {
    try { render(await api("/api/spend")); }
    catch (error) { $("spend-note").textContent = "spend unavailable: " + error.message; }
  }

  function init() {
    loadSpend();
    setInterval(loadSpend, REFRESH_MS);
    let pending = null;  // a new cycle changes the cycle line: refresh once it settles
    new MutationObserver(() => { clearTimeout(pending); pending = setTimeout(loadSpend, 500); })
      .observe($("cycle-info"), { childList: true, characterData: true, subtree: true });
  }

  SR.loadSpend = loadSpend;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
