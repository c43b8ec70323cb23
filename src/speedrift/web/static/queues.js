/* Section 5: the attention queues, with copy-to-clipboard prompts and approvals. */
(function () {
  "use strict";

  const SR = window.SR;
  const { S, $, el, api, post, toast, ago, keepFocus, QUEUE_PAGE } = SR;

  // ------------------------------------------------------------------ section 5: queues

  async function loadPrompts() {
    try {
      const data = await api("/api/queues");
      S.prompts = new Map();
      for (const queue of Object.values(data.queues || {})) for (const item of queue.items || []) S.prompts.set(item.id, item.prompts);
      for (const button of document.querySelectorAll("button[data-copy]")) button.disabled = false;
    } catch (error) { /* prompts stay unavailable; copy buttons stay disabled */ }
  }

  function fallbackCopy(text) {
    const area = $("copy-fallback");
    area.value = text;
    area.focus();
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    return ok;
  }

  async function copyText(text, what, button) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); ok = true; }
    } catch (e) { ok = false; }
    if (!ok) ok = fallbackCopy(text);
    if (button) button.focus();
    toast(ok ? what + " copied" : "copy failed: select the text by hand", !ok);
  }

  async function copyPrompt(itemId, which, button) {
    const prompts = S.prompts.get(itemId);
    const text = prompts && prompts[which];
    if (!text) { toast("prompt not loaded yet", true); return; }
    await copyText(text, which + " prompt", button);
  }

  // a task waiting on a person's answer: what to do first, and the command that answers it; a
  // question an agent asked (a human_escalation record) also gets a box that sends the answer
  function answerBlock(item) {
    const answer = item.answer;
    if (!answer || !answer.command) return null;
    return el("div", { class: "answer" },
      answer.first ? el("div", { class: "first", text: "first: " + answer.first }) : null,
      el("code", { class: "answer-command", text: answer.command }),
      answer.record ? answerBox(item, answer.record) : null);
  }

  // drafts survive the list being redrawn (every live update redraws it); answered records stay marked
  const drafts = new Map();
  const answered = new Map();

  function answerBox(item, record) {
    const done = answered.get(record);
    if (done) return el("div", { class: "answered muted", text: done });
    const id = "answer-" + record;
    const area = el("textarea", { id, class: "answer-text", rows: 2, maxlength: 8000, "data-answer-box": record, placeholder: "your answer (the task gets it)", oninput: (e) => drafts.set(record, e.currentTarget.value) });
    area.value = drafts.get(record) || "";
    return el("div", { class: "answer-box" },
      el("label", { for: id, class: "muted", text: "answer " + record + ":" }),
      area,
      el("button", { type: "button", "data-send-answer": record, "aria-label": "Send the answer to " + record, onclick: (e) => sendAnswer(item, record, area, e.currentTarget) }, "send answer"));
  }

  async function sendAnswer(item, record, area, button) {
    const text = area.value.trim();
    if (!text) { toast("write the answer first", true); area.focus(); return; }
    button.disabled = true;
    try {
      const result = await post("/api/repos/" + encodeURIComponent(item.repo) + "/answer/" + encodeURIComponent(record), { answer: text });
      const said = "answered: " + result.feedback.id + (result.reopened ? "; " + result.task + " is open again" : "");
      answered.set(record, said);
      drafts.delete(record);
      toast(said);
      renderQueues();
    } catch (error) {
      toast("answer refused: " + error.message, true);
      button.disabled = false;
    }
  }

  async function approve(item, button) {
    button.disabled = true;
    try {
      const result = await post("/api/actions/" + encodeURIComponent(item.action_id) + "/approve");
      toast("approved " + result.action_id + ": the next cycle runs it");
    } catch (error) {
      toast("approve refused: " + error.message, true);
      button.disabled = false;
    }
  }

  // a task waiting at an approval checkpoint (an oversight wave's merge or deploy start): the button
  // records the dashboard user's approval; the entry is gone from the queue at the next refresh
  const approvedTasks = new Map();

  async function approveTask(item, task, button) {
    button.disabled = true;
    try {
      const result = await post("/api/repos/" + encodeURIComponent(item.repo) + "/tasks/" + encodeURIComponent(task) + "/approve");
      const said = "approved " + result.task + " to " + result.approved + (result.attempt !== null && result.attempt !== undefined ? " attempt " + result.attempt : "") + " by " + result.by;
      approvedTasks.set(item.id, said);
      toast(said);
      renderQueues();
    } catch (error) {
      toast("approval refused: " + error.message, true);
      button.disabled = false;
    }
  }

  function approveButton(item) {
    const task = item.answer && item.answer.approve;
    if (!task) return null;
    const done = approvedTasks.get(item.id);
    if (done) return el("span", { class: "approved muted", text: done });
    return el("button", { type: "button", "data-approve-task": task, "aria-label": "Approve " + (item.answer.checkpoint || "") + " of " + task, onclick: (e) => approveTask(item, task, e.currentTarget) }, "Approve");
  }

  // an upstream candidate: the repo's upstream proposals (fleetops/upstream.py), each with a button
  // that approves pushing its branch to the fork and opening a draft (the token is the authority;
  // the repo's opt-in and the forge's checks still apply, and a refusal says what it would run)
  const upstreamShown = new Map();

  async function loadUpstream(item, button) {
    if (button) button.disabled = true;
    try {
      const data = await api("/api/repos/" + encodeURIComponent(item.repo) + "/upstream");
      upstreamShown.set(item.repo, data.proposals || []);
      renderQueues();
    } catch (error) {
      toast("upstream proposals unavailable: " + error.message, true);
      if (button) button.disabled = false;
    }
  }

  async function proposeUpstream(item, proposal, button) {
    if (!window.confirm("Push " + proposal.branch + " to your fork and open a draft pull request?")) return;
    button.disabled = true;
    try {
      const result = await post("/api/repos/" + encodeURIComponent(item.repo) + "/upstream/" + encodeURIComponent(proposal.id) + "/propose");
      toast(result.said);
    } catch (error) {
      toast("propose refused: " + error.message, true);
    }
    await loadUpstream(item, null);
  }

  function upstreamBlock(item) {
    const proposals = upstreamShown.get(item.repo);
    if (!proposals) return el("button", { type: "button", "data-upstream": item.repo, "aria-label": "Upstream proposals of " + item.repo, onclick: (e) => loadUpstream(item, e.currentTarget) }, "upstream proposals");
    if (!proposals.length) return el("p", { class: "muted", text: "no upstream proposal yet (`speedrift upstream prepare`)" });
    return el("ul", { class: "upstream-proposals" }, ...proposals.map((p) => el("li", { "data-proposal": p.id },
      el("code", { text: p.id }), " ",
      el("span", { text: p.state + " — " + p.title }), " ",
      p.url && /^https?:\/\//.test(p.url) ? el("a", { href: p.url, rel: "noopener noreferrer", target: "_blank", text: "draft" }) : null,
      p.state !== "proposed" ? el("button", { type: "button", "data-propose": p.id, "aria-label": "Propose " + p.id + " upstream", onclick: (e) => proposeUpstream(item, p, e.currentTarget) }, "propose") : null,
      p.said ? el("div", { class: "muted", text: p.said }) : null)));
  }

  // ------------------------------------------------------------------ an item's detail (dialog)

  function promptBlock(item, which) {
    const prompts = S.prompts.get(item.id);
    const text = prompts && prompts[which];
    return el("section", { class: "prompt-block", "data-prompt": which },
      el("h3", {}, (which === "claude" ? "Claude" : "Codex") + " prompt "),
      text ? el("div", { class: "prompt" }, SR.markdown(text)) : el("p", { class: "muted", text: "loading the prompt…" }),
      el("div", { class: "actions" },
        el("button", { type: "button", "data-copy": which, disabled: !text, onclick: (e) => copyPrompt(item.id, which, e.currentTarget) }, "copy " + which + " prompt")));
  }

  function renderQueueDetail(item) {
    const body = $("queue-body");
    const since = item.since ? "waiting " + ago(Math.max(0, (Date.now() - Date.parse(item.since)) / 1000)) + " (since " + item.since + ")" : null;
    const facts = [["repo", item.repo], ["priority", String(item.priority)], ["task", item.task], ["action", item.action_id], ["since", since], ["id", item.id]]
      .filter(([, value]) => value !== null && value !== undefined && value !== "");
    const dl = el("dl", { class: "kv" });
    for (const [key, value] of facts) dl.append(el("dt", { text: key }), el("dd", { text: value }));
    body.replaceChildren(el("div", { class: "q-detail", "data-item": item.id },
      el("div", { class: "what" }, ...SR.markdownInline(item.what || "")),
      el("div", { class: "why" }, SR.markdown(item.why || "")),
      dl,
      answerBlock(item),
      el("div", { class: "actions" },
        approveButton(item),
        item.approvable && item.action_id ? el("button", { type: "button", "aria-label": "Approve " + item.action_id, onclick: (e) => approve(item, e.currentTarget) }, "approve") : null,
        item.task ? el("button", { type: "button", onclick: () => { $("queue-dialog").close(); SR.openRun(item.repo, item.task); } }, "run detail") : null),
      promptBlock(item, "claude"),
      promptBlock(item, "codex")));
    $("queue-title").textContent = "Queue item · " + (item.repo || "");
  }

  async function openQueueItem(item) {
    renderQueueDetail(item);
    const dialog = $("queue-dialog");
    if (!dialog.open) dialog.showModal();
    if (!S.prompts.has(item.id)) {
      await loadPrompts();
      if (dialog.open && $("queue-body").querySelector("[data-item='" + CSS.escape(item.id) + "']")) renderQueueDetail(item);
    }
  }

  function queueItem(item, key) {
    const prio = item.priority >= 80 ? "prio-hi" : item.priority >= 50 ? "prio-mid" : "";
    const loaded = S.prompts.has(item.id);
    // a click anywhere on the item (not on its buttons, links or answer box) opens its detail
    const open = (event) => { if (!event.target.closest("button, a, textarea, input, label")) openQueueItem(item); };
    return el("li", { class: "qitem", "data-item": item.id, onclick: open },
      el("button", { type: "button", class: "what open-item", "aria-haspopup": "dialog", title: "Open the whole item and its prompts", onclick: () => openQueueItem(item) }, ...SR.markdownInline(item.what || "")),
      el("div", { class: "why" }, SR.markdown(item.why || "")),
      answerBlock(item),
      key === "upstream" && item.repo ? upstreamBlock(item) : null,
      el("div", { class: "meta" },
        el("span", { class: "prio " + prio, text: "priority " + item.priority }),
        el("span", { text: item.repo }),
        item.since ? el("span", { class: "muted", title: "since " + item.since, text: "waiting " + ago(Math.max(0, (Date.now() - Date.parse(item.since)) / 1000)) }) : null),
      el("div", { class: "actions" },
        el("button", { type: "button", "data-copy": "claude", disabled: !loaded, "aria-label": "Copy the Claude prompt for: " + item.what, onclick: (e) => copyPrompt(item.id, "claude", e.currentTarget) }, "copy Claude prompt"),
        el("button", { type: "button", "data-copy": "codex", disabled: !loaded, "aria-label": "Copy the Codex prompt for: " + item.what, onclick: (e) => copyPrompt(item.id, "codex", e.currentTarget) }, "copy Codex prompt"),
        item.answer && item.answer.command ? el("button", { type: "button", "data-answer": "", "aria-label": "Copy the answer command for: " + item.what, onclick: (e) => copyText(item.answer.command, "answer command", e.currentTarget) }, "copy answer command") : null,
        approveButton(item),
        item.approvable && item.action_id ? el("button", { type: "button", "aria-label": "Approve " + item.action_id, onclick: (e) => approve(item, e.currentTarget) }, "approve") : null,
        item.task ? el("button", { type: "button", "aria-label": "Run detail of " + item.task, onclick: () => SR.openRun(item.repo, item.task) }, "run detail") : null));
  }

  function renderQueues() {
    const box = $("queue-list");
    const keys = Object.keys(S.queues);
    const typing = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.answerBox : null;
    const listed = new Set(keys.flatMap((key) => (S.queues[key].items || []).map((item) => item.id)));
    for (const id of [...approvedTasks.keys()]) if (!listed.has(id)) approvedTasks.delete(id);  // gone: a later wait asks again
    keepFocus(box, () => box.replaceChildren(...keys.map((key) => {
      const queue = S.queues[key];
      const limit = S.queueLimits[key] || QUEUE_PAGE;
      const items = queue.items || [];
      const more = items.length > limit
        ? el("button", { type: "button", class: "more", onclick: () => { S.queueLimits[key] = limit + 10; renderQueues(); } }, "show more (" + (items.length - limit) + ")")
        : null;
      return el("div", { class: "queue", "data-queue": key },
        el("h3", {}, queue.label + " ", el("span", { class: "muted", text: "(" + queue.total + ")" })),
        items.length ? el("ol", {}, ...items.slice(0, limit).map((item) => queueItem(item, key))) : el("p", { class: "muted", text: "nothing waiting" }),
        more,
        queue.total > items.length ? el("p", { class: "muted", text: (queue.total - items.length) + " more in /api/queues" }) : null);
    })));
    if (typing) {  // the answer being typed keeps its focus and caret through the redraw
      const area = box.querySelector("textarea[data-answer-box='" + CSS.escape(typing) + "']");
      if (area) { area.focus({ preventScroll: true }); area.setSelectionRange(area.value.length, area.value.length); }
    }
  }

  Object.assign(SR, { loadPrompts, renderQueues, openQueueItem });
})();
